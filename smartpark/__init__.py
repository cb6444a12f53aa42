"""SmartPark: smart industrial-park monitoring platform (edge + cloud)."""

__version__ = "0.1.0"
