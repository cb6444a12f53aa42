"""`smartpark`: one command line for every component.

Each component owns its sub-command (`<package>/cli.py`, a typer app); this module only mounts them, so
`smartpark edge --config gw.yaml`, `smartpark ingest`, `smartpark analytics`, `smartpark api` and
`smartpark simulate ...` each run one component on its own, as in production.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from analytics.alerts.cli import app as alerts_app
from analytics.cli import app as analytics_app
from api.cli import app as api_app
from api.cli_users import keys_app, users_app
from api.grafana import grafana_app
from edge_agent.cli import app as edge_app
from ingest.cli import app as ingest_app
from parkmodel.registry import DEFAULT_REGISTRY, RegistryError, load_registry
from reports.cli import report as report_command
from simulators.cli import app as simulate_app
from simulators.history import history_command
from smartpark.influx_schema import backfill_command, setup_command

app = typer.Typer(
    name="smartpark",
    help="SmartPark: smart industrial-park monitoring (edge + cloud). 智慧园区监测平台。",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(edge_app, name="edge", help="Edge agent: poll Modbus devices, publish over MQTT.")
app.add_typer(ingest_app, name="ingest", help="Ingest: MQTT telemetry into InfluxDB.")
app.add_typer(analytics_app, name="analytics", help="Analytics: live KPIs, energy, new-energy ratio.")
app.add_typer(alerts_app, name="alerts", help="Alerts and safety events: rules, notification, escalation.")
app.add_typer(api_app, name="api", help="API and dashboard.")
app.add_typer(simulate_app, name="simulate", help="Simulated Modbus devices for demos and tests.")
simulate_app.command("history", help="Write a realistic history of the demo park straight to InfluxDB.")(
    history_command)
influx_app = typer.Typer(help="InfluxDB schema: retention policies, continuous queries, rollups.", no_args_is_help=True)
influx_app.command("setup", help="Create the database, retention policies and continuous queries (idempotent).")(
    setup_command)
influx_app.command("backfill", help="Compute the 1-minute and 1-hour rollups over past data.")(backfill_command)
app.add_typer(influx_app, name="influx")
app.add_typer(users_app, name="users", help="Dashboard and API users.")
app.add_typer(keys_app, name="keys", help="API keys for machines and gateways.")
app.add_typer(grafana_app, name="grafana", help="Grafana provisioning and push.")
app.command("report", help="Energy and per-mu benefit report of an enterprise or a park (PDF, Excel, HTML).")(
    report_command)

registry_app = typer.Typer(help="Park registry: parks, enterprises, gateways, devices.", no_args_is_help=True)
app.add_typer(registry_app, name="registry")


@registry_app.command("check")
def registry_check(path: Annotated[Path, typer.Argument(help="registry YAML file")] = DEFAULT_REGISTRY) -> None:
    """Validate a registry file and summarise it."""
    try:
        reg = load_registry(path)
    except RegistryError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    devices = list(reg.devices())
    enterprises = sum(len(p.enterprises) for p in reg.parks)
    typer.echo(f"{path}: ok — {len(reg.parks)} parks, {enterprises} enterprises, {len(devices)} devices")


@app.command()
def demo(
    base_dir: Annotated[Path, typer.Option(help="folder for data, configs and logs")] = Path("var"),
    speed: Annotated[float, typer.Option(help="simulated seconds per real second")] = 1.0,
    history_days: Annotated[int, typer.Option(help="days of simulated history written at first start (0: none)")] = 28,
) -> None:
    """Start the whole platform locally with simulated devices (what `make demo` runs)."""
    from deploy.demo import run_demo

    raise typer.Exit(run_demo(base_dir=base_dir, speed=speed, history_days=history_days))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
