"""`smartpark analytics`: run the live KPI service."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from parkmodel.registry import RegistryError, load_registry
from smartpark.config import ConfigError, load_settings

app = typer.Typer(help="Live KPIs: energy, demand and new-energy ratio per enterprise and park.")


@app.callback(invoke_without_command=True)
def analytics(
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file (sections mqtt, influx, ...)")] = None,
    factors: Annotated[Path | None, typer.Option("--factors", help="tce/CO2 factor YAML (default: shipped)")] = None,
) -> None:
    """Subscribe to telemetry and publish park KPIs on sp/v1/{park}/kpi until interrupted."""
    from analytics.factors import load_factors
    from analytics.service import run

    try:
        settings = load_settings(config)
        registry = load_registry(settings.registry)
        factor_set = load_factors(factors)
    except (ConfigError, RegistryError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(run(settings, registry, factor_set))
    except KeyboardInterrupt:
        pass
