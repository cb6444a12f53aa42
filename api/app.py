"""The FastAPI application: lifespan (InfluxDB client, MQTT KPI feed), routers, errors, metrics, dashboard."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

import smartpark
from api.errors import install_error_handlers
from api.influx import InfluxReader
from api.kpi_feed import KpiFeed
from api.main import api_router, ops_router
from api.metrics import ApiMetrics, MetricsMiddleware
from parkmodel.registry import Registry
from smartpark.config import Settings

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"


def create_app(settings: Settings, registry: Registry) -> FastAPI:
    """Build the API and dashboard app.

    The lifespan opens one `httpx.AsyncClient` to InfluxDB and one MQTT KPI feed (reconnecting in the
    background), so the app starts and serves registry routes while the broker or InfluxDB is down.

    Args:
        settings: service configuration (`mqtt`, `influx`, `api` sections).
        registry: the park registry every id is checked against.
    """
    metrics = ApiMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        auth = None
        if settings.influx.username and settings.influx.password:
            auth = httpx.BasicAuth(settings.influx.username, settings.influx.password.get_secret_value())
        async with (
            httpx.AsyncClient(base_url=settings.influx.url, timeout=settings.influx.timeout_s, auth=auth) as client,
            KpiFeed(settings.mqtt, lambda park: registry.park(park) is not None, metrics) as feed,
        ):
            app.state.influx = InfluxReader(client, settings.influx)
            app.state.kpi_feed = feed
            log.info("api ready: influxdb %s, mqtt %s:%s", settings.influx.url, settings.mqtt.host, settings.mqtt.port)
            yield

    app = FastAPI(
        title="SmartPark API",
        version=smartpark.__version__,
        description="Smart industrial-park monitoring: registry, telemetry, KPIs, live feed. 智慧园区监测平台接口。",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.metrics = metrics
    install_error_handlers(app)
    app.include_router(api_router)
    app.include_router(ops_router)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
