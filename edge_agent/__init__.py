"""SmartPark edge_agent."""
