"""SmartPark simulators."""
