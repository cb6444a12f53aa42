"""`smartpark ingest [--config FILE] [--metrics-port N]`: run the ingest service until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from ingest.service import run_ingest
from parkmodel.registry import Registry, RegistryError, load_registry
from smartpark.config import ConfigError, Settings, load_settings

app = typer.Typer(help="Ingest: MQTT telemetry, events and status into InfluxDB.", no_args_is_help=False)


def load_config(config: Path | None) -> tuple[Settings, Registry]:
    """Settings (file + SMARTPARK_* environment) and the registry they name.

    Args:
        config: the YAML config file, or None for defaults and environment only.

    Raises:
        ConfigError: the config or the registry is missing or invalid (the message names file and key).
    """
    settings = load_settings(config)
    try:
        registry = load_registry(settings.registry)
    except RegistryError as exc:
        raise ConfigError(f"{exc}\n  (registry: {settings.registry}, from key `registry` of "
                          f"{config or 'the defaults'} or SMARTPARK_REGISTRY)") from None
    return settings, registry


async def _run_until_signal(settings: Settings, registry: Registry, metrics_port: int | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)  # graceful: write and acknowledge what is queued
    try:
        await run_ingest(settings, registry, metrics_port=metrics_port, stop=stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="config YAML (mqtt:, influx:, ingest:)")] = None,
    metrics_port: Annotated[int | None, typer.Option(min=0, max=65535,
                                                     help="serve Prometheus /metrics on this port")] = None,
) -> None:
    """Run ingest: shared MQTT subscription -> validate -> InfluxDB, acknowledging after each write."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        settings, registry = load_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    tune_gc()
    asyncio.run(_run_until_signal(settings, registry, metrics_port))


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the hot path of a long-running worker.

    The registry (tens of thousands of pydantic objects) and the in-flight window (up to `max_in_flight`
    messages) are long-lived; every full collection walked them all, which made ingest's CPU per reading
    grow with the backlog. `gc.freeze()` moves what exists at start-up out of the collector's sight, and a
    larger first-generation threshold makes collections rare (the hot path creates no reference cycles).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
