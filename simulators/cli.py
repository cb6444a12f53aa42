"""`smartpark simulate ...`: run a simulated park, and drive a running one over its control channel."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml

from parkmodel.registry import DEFAULT_REGISTRY, RegistryError, load_registry
from simulators.faults import FaultKind
from simulators.park import SimulatedPark

app = typer.Typer(help="Simulated Modbus devices of a park: run them, pin values, inject faults.",
                  no_args_is_help=True)

ControlUrl = Annotated[str, typer.Option("--control", help="control URL of a running simulator")]
DEFAULT_CONTROL = "http://127.0.0.1:8900"


async def _serve(park: SimulatedPark, layout_out: Path | None) -> None:
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # stop cleanly: servers closed, ports freed
        loop.add_signal_handler(sig, main.cancel)
    async with park:
        layout = park.layout_dict()
        if layout_out is not None:
            text = yaml.safe_dump(layout, allow_unicode=True, sort_keys=False)
            await asyncio.to_thread(layout_out.write_text, text, encoding="utf-8")
            typer.echo(f"layout of {len(park.devices)} devices written to {layout_out}")
        else:
            typer.echo(f"{'device':<32} {'address':<22} unit  template")
            for a in park.layout():
                typer.echo(f"{a.device:<32} {a.host + ':' + str(a.port):<22} {a.unit_id:>4}  {a.template}")
        if park.control is not None:
            typer.echo(f"control: {park.control.url}")
        typer.echo(f"{len(park.devices)} devices on {len(park.servers)} gateways, speed {park.clock.speed:g}; "
                   "Ctrl-C stops")
        await park.run_forever()


@app.command("park")
def park_command(
    registry: Annotated[Path, typer.Option(help="registry YAML")] = DEFAULT_REGISTRY,
    host: Annotated[str, typer.Option(help="address the Modbus servers listen on")] = "127.0.0.1",
    base_port: Annotated[int, typer.Option(help="port of the first gateway; the next gateways count up")] = 5020,
    speed: Annotated[float, typer.Option(help="simulated seconds per real second")] = 1.0,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    control_port: Annotated[int, typer.Option(help="port of the HTTP control channel (0 = none)")] = 8900,
    park: Annotated[list[str] | None, typer.Option("--park", help="simulate only this park (repeatable)")] = None,
    enterprise: Annotated[list[str] | None, typer.Option(
        "--enterprise", help="simulate only this enterprise (repeatable)")] = None,
    layout_out: Annotated[Path | None, typer.Option(help="write the device → address layout as YAML")] = None,
) -> None:
    """Serve the registry's devices as Modbus TCP servers, one per gateway, until Ctrl-C."""
    try:
        reg = load_registry(registry)
        sim = SimulatedPark(reg, host=host, base_port=base_port, speed=speed, seed=seed,
                            control_port=control_port or None, parks=park, enterprises=enterprise)
    except (RegistryError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        try:
            asyncio.run(_serve(sim, layout_out))
        except OSError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None


def _call(method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        response = httpx.request(method, url, json=body, timeout=10)
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach the simulator at {url}: {exc}", err=True)
        raise typer.Exit(1) from None
    try:
        data: dict[str, Any] = response.json()
    except ValueError:
        typer.echo(f"error: {url} answered {response.status_code} with no JSON: {response.text[:200]}", err=True)
        raise typer.Exit(1) from None
    if response.status_code >= 400:
        typer.echo(f"error: {data.get('error', data)}", err=True)
        raise typer.Exit(1)
    return data


@app.command("set")
def set_command(
    device: Annotated[str, typer.Argument(help="device id")],
    point: Annotated[str, typer.Argument(help="point name, e.g. active_power_kw")],
    value: Annotated[float, typer.Argument(help="value in the point's unit")],
    control: ControlUrl = DEFAULT_CONTROL,
) -> None:
    """Pin a point of a device to a value (held until `fault DEVICE clear`)."""
    _call("POST", control.rstrip("/") + "/set", {"device": device, "point": point, "value": value})
    typer.echo(f"{device}.{point} = {value:g}")


@app.command("fault")
def fault_command(
    device: Annotated[str, typer.Argument(help="device id")],
    kind: Annotated[str, typer.Argument(help=f"one of: {', '.join(k.value for k in FaultKind)}")],
    control: ControlUrl = DEFAULT_CONTROL,
) -> None:
    """Inject a fault or event into a device (`clear` removes faults and pinned values)."""
    _call("POST", control.rstrip("/") + "/fault", {"device": device, "fault": kind})
    typer.echo(f"{device}: {kind}")


@app.command("state")
def state_command(control: ControlUrl = DEFAULT_CONTROL) -> None:
    """Print the simulator's time, and every device's address, faults and values, as JSON."""
    typer.echo(json.dumps(_call("GET", control.rstrip("/") + "/state"), ensure_ascii=False, indent=2))
