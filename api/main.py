"""Collects the routers: the versioned REST and WebSocket API under `/api/v1`, operations at the root.

Every route of `api_router` requires a credential (a router-level dependency, so none can forget it);
`public_router` holds only the login; the WebSocket authenticates itself (query token or header).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.deps import _access
from api.routes import (
    admin,
    alerts,
    auth,
    devices,
    energy,
    enterprises,
    health,
    kpi,
    live,
    parks,
    registry_admin,
    reports,
    rules,
)

API_PREFIX = "/api/v1"

api_router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(_access)])
api_router.include_router(auth.router)
api_router.include_router(parks.router)
api_router.include_router(enterprises.router)
api_router.include_router(devices.router)
api_router.include_router(kpi.router)
api_router.include_router(admin.router)
api_router.include_router(registry_admin.router)
api_router.include_router(alerts.router)
api_router.include_router(reports.router)
api_router.include_router(rules.router)
api_router.include_router(energy.router)

public_router = APIRouter(prefix=API_PREFIX)
public_router.include_router(auth.public_router)
public_router.include_router(live.router)

ops_router = health.router
