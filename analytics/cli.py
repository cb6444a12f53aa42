"""`smartpark analytics`: run the live KPI service; `smartpark analytics backfill`: recompute stored ranges."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated

import typer

from parkmodel.registry import RegistryError, load_registry
from smartpark.config import ConfigError, load_settings

app = typer.Typer(help="Live KPIs: energy, demand and new-energy ratio per enterprise and park.")

BEIJING = timezone(timedelta(hours=8))
ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML config file (sections mqtt, influx, ...)")]
FactorsOption = Annotated[Path | None, typer.Option("--factors", help="tce/CO2 factor YAML (default: shipped)")]


@app.callback(invoke_without_command=True)
def analytics(ctx: typer.Context, config: ConfigOption = None, factors: FactorsOption = None) -> None:
    """Subscribe to telemetry and publish park KPIs on sp/v1/{park}/kpi until interrupted."""
    if ctx.invoked_subcommand is not None:
        return
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


def parse_when(text: str, option: str) -> int:
    """Epoch ms of a date (`2025-06-01`, 00:00 Beijing time) or an ISO time (naive = Beijing time).

    Raises:
        typer.BadParameter: naming the option and the expected form.
    """
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date (YYYY-MM-DD) or ISO time (YYYY-MM-DDTHH:MM[+08:00])",
                                 param_hint=option) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=BEIJING)
    return int(t.timestamp() * 1000)


@app.command("backfill")
def backfill_command(
    start: Annotated[str, typer.Option("--from", help="first day (YYYY-MM-DD, Beijing time) or ISO time")],
    end: Annotated[str, typer.Option("--to", help="end, exclusive (YYYY-MM-DD or ISO time)")],
    config: ConfigOption = None,
    factors: FactorsOption = None,
    devices: Annotated[bool, typer.Option("--devices", help="also write device rows")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="compute and count, write nothing")] = False,
) -> None:
    """Recompute hourly and daily energy, tce, CO2 and ratios from `telemetry` into measurement `energy`."""
    import httpx

    from analytics.backfill import backfill
    from analytics.devices import build_index
    from analytics.factors import load_factors
    from analytics.influx import InfluxError

    start_ms, end_ms = parse_when(start, "--from"), parse_when(end, "--to")
    if end_ms <= start_ms:
        raise typer.BadParameter(f"--to {end} is not after --from {start}", param_hint="--to")
    try:
        settings = load_settings(config)
        registry = load_registry(settings.registry)
        factor_set = load_factors(factors)
    except (ConfigError, RegistryError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    index = build_index(registry)
    cfg = settings.influx

    async def main() -> None:
        auth = (cfg.username, cfg.password.get_secret_value()) if cfg.username and cfg.password else None
        async with httpx.AsyncClient(base_url=cfg.url, timeout=max(cfg.timeout_s, 60.0), auth=auth) as client:
            result = await backfill(client, cfg.database, index, start_ms, end_ms, factors=factor_set,
                                    devices=devices, write=not dry_run,
                                    progress=lambda line: typer.echo(line, err=True))
        verb = "would write" if dry_run else "wrote"
        typer.echo(f"backfill: {result.days} days, {result.values} values read, {verb} {result.lines} energy rows")

    try:
        asyncio.run(main())
    except (httpx.HTTPError, InfluxError) as exc:
        typer.echo(f"backfill failed: InfluxDB at {cfg.url}: {exc}", err=True)
        raise typer.Exit(1) from None
