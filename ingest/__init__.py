"""SmartPark ingest."""
