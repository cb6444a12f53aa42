"""Collects the routers: the versioned REST and WebSocket API under `/api/v1`, operations at the root."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import devices, enterprises, health, kpi, live, parks

API_PREFIX = "/api/v1"

api_router = APIRouter(prefix=API_PREFIX)
api_router.include_router(parks.router)
api_router.include_router(enterprises.router)
api_router.include_router(devices.router)
api_router.include_router(kpi.router)
api_router.include_router(live.router)

ops_router = health.router
