"""`smartpark api`: serve the API and dashboard with uvicorn."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from parkmodel.registry import RegistryError, load_registry
from smartpark.config import ConfigError, load_settings

app = typer.Typer(help="API and dashboard.", pretty_exceptions_enable=False)


async def serve(config: uvicorn.Config) -> None:
    """Run one uvicorn server in the current event loop until it is told to stop."""
    await uvicorn.Server(config).serve()


@app.callback(invoke_without_command=True)
def run(
    config: Annotated[Path | None, typer.Option("--config", help="YAML configuration file")] = None,
    host: Annotated[str | None, typer.Option(help="listen address (default: api.host)")] = None,
    port: Annotated[int | None, typer.Option(help="listen port (default: api.port)")] = None,
) -> None:
    """Serve the REST/WebSocket API and the dashboard."""
    from api.app import create_app

    try:
        settings = load_settings(config)
        registry = load_registry(settings.registry)
    except (ConfigError, RegistryError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    application = create_app(settings, registry)
    uv_config = uvicorn.Config(
        application,
        host=host or settings.api.host,
        port=port or settings.api.port,
        log_level=settings.log_level.lower(),
        ws="websockets-sansio",
        lifespan="on",
    )
    asyncio.run(serve(uv_config))
