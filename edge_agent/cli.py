"""`smartpark edge`: run the edge agent, probe a device's registers, list the shipped templates."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Annotated, Literal

import typer

from edge_agent.agent import run_agent
from edge_agent.config import ConfigError, load_gateway_config
from edge_agent.probe import interpretation_table, read_raw
from edge_agent.registermap import load_template, template_names
from edge_agent.transport import ModbusReadError

app = typer.Typer(help="Edge agent: poll Modbus devices, publish over MQTT with store-and-forward.",
                  no_args_is_help=False)


async def _run_until_signal(config_path: Path) -> None:
    config = load_gateway_config(config_path)
    task = asyncio.create_task(run_agent(config), name="edge-agent")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="gateway config YAML")] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "INFO",
) -> None:
    """Run the edge agent of one gateway (`smartpark edge --config gateway.yaml`)."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    try:
        load_gateway_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    asyncio.run(_run_until_signal(config))


@app.command()
def probe(
    host: Annotated[str, typer.Argument(help="Modbus TCP host (ignored with --rtu-serial)")],
    address: Annotated[int, typer.Argument(help="first register address (0-based)")],
    count: Annotated[int, typer.Argument(min=1, max=2000, help="number of registers")],
    port: Annotated[int, typer.Option(help="Modbus TCP port")] = 502,
    unit: Annotated[int, typer.Option(help="unit (slave) id")] = 1,
    function: Annotated[str, typer.Option(help="holding (FC3) or input (FC4)")] = "holding",
    rtu_serial: Annotated[str | None, typer.Option(help="read Modbus RTU on this serial port instead")] = None,
    baudrate: Annotated[int, typer.Option(help="serial baud rate (with --rtu-serial)")] = 9600,
    timeout: Annotated[float, typer.Option(help="seconds per request")] = 2.0,
) -> None:
    """Read raw registers and print every type and byte/word order interpretation side by side."""
    if function not in ("holding", "input"):
        typer.echo(f"--function must be 'holding' or 'input', got {function!r}", err=True)
        raise typer.Exit(2)
    fn: Literal["holding", "input"] = "holding" if function == "holding" else "input"
    try:
        registers = asyncio.run(read_raw(host, address, count, port=port, unit=unit, function=fn,
                                         rtu_serial=rtu_serial, baudrate=baudrate, timeout_s=timeout))
    except ModbusReadError as exc:
        typer.echo(f"read failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(interpretation_table(registers, address))


@app.command()
def templates() -> None:
    """List the shipped device templates."""
    for name in template_names():
        t = load_template(name)
        typer.echo(f"{name:22} {t.vendor} {t.model}: {t.description} ({len(t.points)} points)")
