"""SmartPark analytics."""
