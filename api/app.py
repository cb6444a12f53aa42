"""The FastAPI application: lifespan (InfluxDB client, MQTT KPI feed), routers, errors, metrics, dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

import smartpark
from analytics.alerts.store import AlertStore
from analytics.factors import Factors, default_factors, load_factors
from api.auth.service import Authenticator
from api.auth.store import AuthStore
from api.errors import install_error_handlers
from api.influx import InfluxReader, open_client
from api.kpi_feed import KpiFeed
from api.logredact import install_redaction
from api.main import api_router, ops_router, public_router
from api.metrics import ApiMetrics, MetricsMiddleware
from api.registry_source import RegistrySource
from parkmodel.registry import Registry
from reports.store import EconomyStore, economy_path
from reports.views import InputsCache
from smartpark.config import Settings

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"


def auth_store_path(settings: Settings) -> Path:
    """Where the users, API keys and token secret live: `{var_dir}/auth.sqlite`."""
    return Path(settings.var_dir) / "auth.sqlite"


def _open_stores(settings: Settings) -> tuple[AlertStore, EconomyStore, Factors]:
    """The alert store, the economic data store and the energy factors (blocking: run in a thread)."""
    path = settings.analytics.factors_file
    factors = load_factors(path) if path is not None else default_factors()
    alerts = AlertStore(Path(settings.var_dir) / "alerts.sqlite")
    return alerts, EconomyStore(economy_path(settings.var_dir)), factors


def create_app(
    settings: Settings,
    registry: Registry,
    *,
    bootstrap_admin: tuple[str, str] | None = None,
    token_ttl_s: int = 3600,
) -> FastAPI:
    """Build the API and dashboard app.

    The lifespan opens one `httpx.AsyncClient` to InfluxDB, one MQTT KPI feed (reconnecting in the
    background), the registry file's watcher and the alert and economic data stores (closed at shutdown), so
    the app starts and serves registry routes while the broker or InfluxDB is down.
    Accounts live in `{settings.var_dir}/auth.sqlite` (created if missing); registry edits are written to
    `settings.registry`, which should hold `registry`.

    Args:
        settings: service configuration (`mqtt`, `influx`, `api` sections, `var_dir`, `registry`).
        registry: the park registry every id is checked against.
        bootstrap_admin: (username, password) of an admin to create if no such user exists yet.
        token_ttl_s: lifetime of session tokens issued at login.
    """
    install_redaction()
    metrics = ApiMetrics()
    store = AuthStore(auth_store_path(settings))
    if bootstrap_admin is not None and all(u.username != bootstrap_admin[0] for u in store.list_users()):
        store.create_user(bootstrap_admin[0], bootstrap_admin[1], "admin")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_redaction()  # again: uvicorn (re)configures its loggers after create_app
        app.state.alert_store, app.state.economy_store, app.state.energy_factors = await asyncio.to_thread(
            _open_stores, settings)
        try:
            async with (
                source,
                open_client(settings.influx) as client,
                KpiFeed(settings.mqtt, lambda park: source.current().park(park) is not None, metrics) as feed,
            ):
                app.state.influx = InfluxReader(client, settings.influx)
                app.state.kpi_feed = feed
                log.info("api ready: influxdb %s, mqtt %s:%s", settings.influx.url, settings.mqtt.host,
                         settings.mqtt.port)
                yield
        finally:
            await asyncio.to_thread(app.state.alert_store.close)

    app = FastAPI(
        title="SmartPark API",
        version=smartpark.__version__,
        description="Smart industrial-park monitoring: registry, telemetry, KPIs, live feed. 智慧园区监测平台接口。",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.metrics = metrics
    app.state.auth = Authenticator(store, token_ttl_s=token_ttl_s)
    source = RegistrySource(Path(settings.registry), registry,
                            on_change=lambda new: setattr(app.state, "registry", new))
    app.state.registry_source = source
    app.state.reports_inputs_cache = InputsCache()
    install_error_handlers(app)
    app.include_router(public_router)
    app.include_router(api_router)
    app.include_router(ops_router)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
