"""SmartPark API: REST, live WebSocket and the dashboard (FastAPI)."""

from api.app import create_app

__all__ = ["create_app"]
