"""One call from ids and a period to report bytes: what the CLI and the API both use."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

import httpx

from analytics.factors import Factors, default_factors
from parkmodel.registry import Enterprise, Registry
from reports.build import EnterpriseReport, ParkReport, enterprise_report, load_inputs, park_report
from reports.config import EvaluationConfig, default_evaluation
from reports.labels import Lang
from reports.periods import Period
from reports.render import Format, render
from reports.store import EconomyStore, economy_path
from smartpark.config import Settings

log = logging.getLogger(__name__)
Kind = Literal["enterprise", "park"]


async def build_report(client: httpx.AsyncClient, database: str, registry: Registry, store: EconomyStore, kind: Kind,
                       ident: str, period: Period, *, factors: Factors | None = None,
                       config: EvaluationConfig | None = None, energy_mode: str = "auto",
                       visible: Callable[[Enterprise], bool] | None = None) -> EnterpriseReport | ParkReport:
    """Load the figures and build one report.

    Args:
        client: HTTP client with the InfluxDB base URL.
        database: InfluxDB database.
        registry: the registry.
        store: economic data.
        kind: `enterprise` or `park`.
        ident: its id.
        period: the period.
        factors: tce/CO2 factors (default: analytics' shipped set).
        config: evaluation config (default: the shipped one).
        energy_mode: `auto` (stored daily rows, else recomputed from telemetry), `stored` or `telemetry`.
        visible: park reports: which enterprises to list individually.

    Raises:
        KeyError: the id is not in the registry.
        InfluxError: a query failed.
    """
    found = registry.enterprise(ident) if kind == "enterprise" else registry.park(ident)
    if found is None:
        raise KeyError(f"{kind} {ident!r} is not in the registry")
    inputs = await load_inputs(client, database, registry, store, period, factors or default_factors(),
                               config or default_evaluation(), energy_mode)
    if kind == "enterprise":
        return enterprise_report(inputs, ident)
    return park_report(inputs, ident, visible)


async def generate(settings: Settings, registry: Registry, kind: Kind, ident: str, period: Period, fmt: Format,
                   lang: Lang = "zh", *, factors: Factors | None = None, config: EvaluationConfig | None = None,
                   energy_mode: str = "auto") -> bytes:
    """A report as bytes, opening its own InfluxDB client (the CLI's path).

    Raises:
        KeyError, InfluxError, RenderError: see `build_report` and `reports.render`.
    """
    started = time.perf_counter()
    cfg = settings.influx
    auth = (cfg.username, cfg.password.get_secret_value()) if cfg.username and cfg.password else None
    async with httpx.AsyncClient(base_url=cfg.url, timeout=max(cfg.timeout_s, 60.0), auth=auth) as client:
        report = await build_report(client, cfg.database, registry, EconomyStore(economy_path(settings.var_dir)), kind,
                                    ident, period, factors=factors, config=config, energy_mode=energy_mode)
    body = await render(report, fmt, lang)
    log.info("report %s %s %s %s: %d bytes in %.2f s", kind, ident, period.label, fmt, len(body),
             time.perf_counter() - started)
    return body
