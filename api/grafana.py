"""Grafana: an InfluxQL data source and park, enterprise and device dashboards, generated from the same KPI
keys and point names the API serves; written as provisioning files (`deploy/grafana/`) or pushed to a running
Grafana with grafana-client (`smartpark grafana push --url --token`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from api.queries import quote_ident

DATASOURCE_UID = "smartpark-influxdb"
FOLDER_UID = "smartpark"
FOLDER_TITLE = "SmartPark"
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "deploy" / "grafana"
DS_REF = {"type": "influxdb", "uid": DATASOURCE_UID}

grafana_app = typer.Typer(help="Grafana provisioning: data source and dashboards.", no_args_is_help=True,
                          pretty_exceptions_enable=False)


def datasource(influx_url: str = "http://127.0.0.1:8086", database: str = "smartpark") -> dict[str, Any]:
    """The InfluxDB (InfluxQL) data source, as Grafana's API and provisioning files take it.

    Args:
        influx_url: InfluxDB's HTTP address as Grafana reaches it.
        database: the InfluxDB database.
    """
    return {"name": "SmartPark InfluxDB", "uid": DATASOURCE_UID, "type": "influxdb", "access": "proxy",
            "url": influx_url, "jsonData": {"dbName": database, "httpMode": "POST", "timeInterval": "2s"},
            "isDefault": False}


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "query", "datasource": DS_REF, "query": query,
            "definition": query, "refresh": 1, "sort": 1, "includeAll": False, "multi": False}


def _target(ref: str, query: str, alias: str = "$col") -> dict[str, Any]:
    return {"refId": ref, "datasource": DS_REF, "rawQuery": True, "resultFormat": "time_series", "query": query,
            "alias": alias}


def _kpi_select(keys: list[str], where: str, agg: str = "mean") -> str:
    cols = ", ".join(f"{agg}({quote_ident(k)}) AS {quote_ident(k)}" for k in keys)
    return f'SELECT {cols} FROM "kpi" WHERE {where} AND $timeFilter GROUP BY time($__interval) fill(null)'


class _Layout:
    """Places panels on Grafana's 24-column grid, left to right, top to bottom."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self._x = 0
        self._y = 0
        self._row_h = 0

    def add(self, panel: dict[str, Any], w: int, h: int) -> None:
        if self._x + w > 24:
            self._x, self._y, self._row_h = 0, self._y + self._row_h, 0
        panel = {"id": len(self.panels) + 1, "datasource": DS_REF, "gridPos": {"x": self._x, "y": self._y, "w": w,
                                                                               "h": h}, **panel}
        self.panels.append(panel)
        self._x += w
        self._row_h = max(self._row_h, h)


def _stat(title: str, query: str, unit: str) -> dict[str, Any]:
    return {"type": "stat", "title": title, "targets": [_target("A", query)],
            "fieldConfig": {"defaults": {"unit": unit, "decimals": 1}, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value", "graphMode": "area"}}


def _series(title: str, targets: list[dict[str, Any]], unit: str) -> dict[str, Any]:
    return {"type": "timeseries", "title": title, "targets": targets,
            "fieldConfig": {"defaults": {"unit": unit, "custom": {"lineWidth": 2, "fillOpacity": 10}}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}}


def _dashboard(uid: str, title: str, variables: list[dict[str, Any]], layout: _Layout) -> dict[str, Any]:
    return {"uid": uid, "title": title, "tags": ["smartpark"], "timezone": "Asia/Shanghai", "schemaVersion": 39,
            "refresh": "10s", "time": {"from": "now-24h", "to": "now"}, "editable": True,
            "templating": {"list": variables}, "panels": layout.panels}


def park_dashboard() -> dict[str, Any]:
    """Park KPIs: live load, generation, grid exchange, new-energy ratio, energy and carbon today."""
    where = "\"scope\" = 'park' AND \"park\" = '$park'"
    last = lambda key: f'SELECT last({quote_ident(key)}) FROM "kpi" WHERE {where} AND $timeFilter'  # noqa: E731
    layout = _Layout()
    layout.add(_stat("负荷 Load", last("load_kw"), "kwatt"), 4, 4)
    layout.add(_stat("发电 Generation", last("generation_kw"), "kwatt"), 4, 4)
    layout.add(_stat("下网 Grid import", last("grid_import_kw"), "kwatt"), 4, 4)
    layout.add(_stat("今日新能源消纳比例 New-energy ratio today", last("new_energy_ratio_today"), "percentunit"), 4, 4)
    layout.add(_stat("今日用电量 Consumed today", last("consumed_today_kwh"), "kwatth"), 4, 4)
    layout.add(_stat("今日碳排放 CO2 today", last("co2_today_kg"), "masskg"), 4, 4)
    layout.add(_series("负荷与发电 Load and generation", [_target("A", _kpi_select(
        ["load_kw", "generation_kw", "pv_kw", "wind_kw", "grid_import_kw", "grid_export_kw", "storage_kw"], where))],
        "kwatt"), 24, 10)
    layout.add(_series("今日累计 Today's totals", [_target("A", _kpi_select(
        ["consumed_today_kwh", "generation_today_kwh", "renewable_consumed_today_kwh"], where, "last"))], "kwatth"),
        12, 8)
    layout.add(_series("新能源消纳比例 New-energy ratio", [_target("A", _kpi_select(
        ["new_energy_ratio_today"], where, "last"))], "percentunit"), 12, 8)
    variables = [_variable("park", "园区 Park", 'SHOW TAG VALUES FROM "kpi" WITH KEY = "park"')]
    return _dashboard("smartpark-park", "SmartPark · 园区 Park", variables, layout)


def enterprise_dashboard() -> dict[str, Any]:
    """Enterprise KPIs: load, energy, tce and CO2 today, new-energy ratio."""
    where = "\"scope\" = 'enterprise' AND \"enterprise\" = '$enterprise'"
    last = lambda key: f'SELECT last({quote_ident(key)}) FROM "kpi" WHERE {where} AND $timeFilter'  # noqa: E731
    layout = _Layout()
    layout.add(_stat("负荷 Load", last("load_kw"), "kwatt"), 6, 4)
    layout.add(_stat("今日用电量 Consumed today", last("consumed_today_kwh"), "kwatth"), 6, 4)
    layout.add(_stat("今日综合能耗 tce today", last("tce_today"), "none"), 6, 4)
    layout.add(_stat("今日碳排放 CO2 today", last("co2_today_kg"), "masskg"), 6, 4)
    layout.add(_series("负荷 Load", [_target("A", _kpi_select(["load_kw", "generation_kw", "grid_import_kw"], where))],
                       "kwatt"), 24, 10)
    layout.add(_series("今日累计 Today's totals", [_target("A", _kpi_select(
        ["consumed_today_kwh", "gas_today_m3", "water_today_m3"], where, "last"))], "none"), 24, 8)
    variables = [
        _variable("park", "园区 Park", 'SHOW TAG VALUES FROM "kpi" WITH KEY = "park"'),
        _variable("enterprise", "企业 Enterprise",
                  "SHOW TAG VALUES FROM \"kpi\" WITH KEY = \"enterprise\" WHERE \"park\" = '$park'"),
    ]
    return _dashboard("smartpark-enterprise", "SmartPark · 企业 Enterprise", variables, layout)


def device_dashboard() -> dict[str, Any]:
    """One device: power, counters, electrical quantities, gas and environment readings, online state."""
    where = "\"device\" = '$device'"

    def q(fields: list[str]) -> str:
        cols = ", ".join(f"mean({quote_ident(f)}) AS {quote_ident(f)}" for f in fields)
        return f'SELECT {cols} FROM "telemetry" WHERE {where} AND $timeFilter GROUP BY time($__interval) fill(null)'

    layout = _Layout()
    layout.add(_stat("在线 Online", f'SELECT last("online") FROM "device_status" WHERE {where} AND $timeFilter',
                     "bool_on_off"), 6, 4)
    layout.add(_stat("有功功率 Active power", f'SELECT last("active_power_kw") FROM "telemetry" WHERE {where} '
                     "AND $timeFilter", "kwatt"), 6, 4)
    layout.add(_stat("正向电能 Energy import", f'SELECT last("energy_import_kwh") FROM "telemetry" WHERE {where} '
                     "AND $timeFilter", "kwatth"), 12, 4)
    layout.add(_series("功率 Power", [_target("A", q(["active_power_kw", "reactive_power_kvar"]))], "kwatt"), 12, 9)
    layout.add(_series("电压电流 Voltage and current", [_target("A", q(["voltage_v"])), _target("B", q(["current_a"]))],
                       "none"), 12, 9)
    layout.add(_series("气体 Gas", [_target("A", q(["lel_pct", "h2s_ppm", "co_ppm"]))], "none"), 12, 9)
    layout.add(_series("环境 Environment", [_target("A", q(["temperature_c", "humidity_pct", "pm25_ugm3", "pm10_ugm3"]))],
                       "none"), 12, 9)
    variables = [
        _variable("park", "园区 Park", 'SHOW TAG VALUES FROM "telemetry" WITH KEY = "park"'),
        _variable("enterprise", "企业 Enterprise",
                  "SHOW TAG VALUES FROM \"telemetry\" WITH KEY = \"enterprise\" WHERE \"park\" = '$park'"),
        _variable("device", "设备 Device",
                  "SHOW TAG VALUES FROM \"telemetry\" WITH KEY = \"device\" WHERE \"enterprise\" = '$enterprise'"),
    ]
    return _dashboard("smartpark-device", "SmartPark · 设备 Device", variables, layout)


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard by file stem."""
    return {"park": park_dashboard(), "enterprise": enterprise_dashboard(), "device": device_dashboard()}


def write_provisioning(out: Path, influx_url: str = "http://127.0.0.1:8086", database: str = "smartpark") -> list[Path]:
    """Write Grafana provisioning files: `provisioning/datasources`, `provisioning/dashboards`, `dashboards/*.json`.

    Args:
        out: the folder (e.g. deploy/grafana); mount `provisioning/` as /etc/grafana/provisioning and
            `dashboards/` as /var/lib/grafana/dashboards.
        influx_url: InfluxDB's address as Grafana reaches it.
        database: the InfluxDB database.
    """
    written = []
    ds_file = out / "provisioning" / "datasources" / "smartpark.yaml"
    ds_file.parent.mkdir(parents=True, exist_ok=True)
    ds_file.write_text(yaml.safe_dump({"apiVersion": 1, "datasources": [datasource(influx_url, database)]},
                                      sort_keys=False), encoding="utf-8")
    written.append(ds_file)
    provider = out / "provisioning" / "dashboards" / "smartpark.yaml"
    provider.parent.mkdir(parents=True, exist_ok=True)
    provider.write_text(yaml.safe_dump({"apiVersion": 1, "providers": [{
        "name": "smartpark", "folder": FOLDER_TITLE, "folderUid": FOLDER_UID, "type": "file",
        "disableDeletion": False, "allowUiUpdates": True,
        "options": {"path": "/var/lib/grafana/dashboards/smartpark"}}]}, sort_keys=False), encoding="utf-8")
    written.append(provider)
    for stem, dashboard in dashboards().items():
        path = out / "dashboards" / f"smartpark-{stem}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dashboard, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


def push(url: str, token: str, influx_url: str, database: str) -> list[str]:
    """Create or update the data source, folder and dashboards in a running Grafana.

    Args:
        url: Grafana's address, e.g. http://127.0.0.1:3000.
        token: a service-account token with editor rights.
        influx_url: InfluxDB's address as Grafana reaches it.
        database: the InfluxDB database.

    Returns:
        The URLs of the pushed dashboards.
    """
    try:
        from grafana_client import GrafanaApi
        from grafana_client.client import GrafanaClientError
    except ImportError:
        # Optional: grafana-client pulls in urllib3-future, which replaces urllib3 for every other package.
        raise RuntimeError("`smartpark grafana push` needs grafana-client: pip install 'smartpark[grafana]'") from None

    api = GrafanaApi.from_url(url, credential=token)
    ds = datasource(influx_url, database)
    try:
        api.datasource.get_datasource_by_uid(DATASOURCE_UID)
        api.datasource.update_datasource_by_uid(DATASOURCE_UID, ds)
    except GrafanaClientError:
        api.datasource.create_datasource(ds)
    try:
        api.folder.get_folder(FOLDER_UID)
    except GrafanaClientError:
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
    urls = []
    for dashboard in dashboards().values():
        result = api.dashboard.update_dashboard({"dashboard": dashboard, "folderUid": FOLDER_UID, "overwrite": True,
                                                 "message": "smartpark grafana push"})
        urls.append(url.rstrip("/") + str(result.get("url", "")))
    return urls


@grafana_app.command("push")
def push_command(
    url: Annotated[str, typer.Option(help="Grafana address, e.g. http://127.0.0.1:3000")],
    token: Annotated[str, typer.Option(envvar="GRAFANA_TOKEN", help="service-account token (or $GRAFANA_TOKEN)")],
    influx_url: Annotated[str, typer.Option(help="InfluxDB as Grafana reaches it")] = "http://127.0.0.1:8086",
    database: Annotated[str, typer.Option(help="InfluxDB database")] = "smartpark",
) -> None:
    """Create or update the SmartPark data source and dashboards in Grafana."""
    try:
        for pushed in push(url, token, influx_url, database):
            typer.echo(pushed)
    except Exception as exc:  # grafana-client raises several types; report without the token
        typer.echo(f"grafana push to {url} failed: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None


@grafana_app.command("export")
def export_command(
    out: Annotated[Path, typer.Option(help="output folder")] = DEFAULT_OUT,
    influx_url: Annotated[str, typer.Option(help="InfluxDB as Grafana reaches it")] = "http://127.0.0.1:8086",
    database: Annotated[str, typer.Option(help="InfluxDB database")] = "smartpark",
) -> None:
    """Write the provisioning files (data source, dashboard provider, dashboards as JSON)."""
    for path in write_provisioning(out, influx_url, database):
        typer.echo(str(path))
