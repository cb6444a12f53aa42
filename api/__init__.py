"""SmartPark api."""
