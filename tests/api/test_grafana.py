"""The Grafana dashboards: well-formed panels on the grid, every query valid InfluxQL that answers from the real
influxd once the variables are filled in, and the committed provisioning files in step with the generator."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import yaml

from api.grafana import DATASOURCE_UID, DEFAULT_OUT, dashboards, write_provisioning
from api.queries import KPI_KEYS
from parkmodel.points import POINTS
from tests.api.test_telemetry_routes import write_lines


def test_dashboards_are_structurally_sound() -> None:
    boards = dashboards()
    assert set(boards) == {"park", "enterprise", "device"}
    assert len({b["uid"] for b in boards.values()}) == 3
    for board in boards.values():
        names = [v["name"] for v in board["templating"]["list"]]
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)) and board["panels"]
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            g = panel["gridPos"]
            assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0
            area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not area & cells, f"{panel['title']} overlaps another panel"
            cells |= area
            assert panel["type"] in ("stat", "timeseries") and panel["targets"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == DATASOURCE_UID and target["rawQuery"]
                used = set(re.findall(r"\$(\w+)", target["query"])) - {"timeFilter", "__interval"}
                assert used <= set(names), (panel["title"], used)
                for field in re.findall(r'(?:mean|last)\("(\w+)"\)', target["query"]):
                    assert field in KPI_KEYS or field in POINTS or field == "online", field


def test_queries_answer_from_influxdb(influx_url: str, influx_db: str, uid: str) -> None:
    write_lines(influx_url, influx_db, [
        f"kpi,scope=park,park=p{uid} load_kw=10,new_energy_ratio_today=0.5 1700000000000",
        f"kpi,scope=enterprise,park=p{uid},enterprise=e{uid} load_kw=4,tce_today=0.2 1700000000000",
        f"telemetry,park=p{uid},enterprise=e{uid},device=m{uid},role=grid_meter active_power_kw=4,voltage_v=400 "
        "1700000000000",
        f"device_status,park=p{uid},enterprise=e{uid},gateway=g{uid},device=m{uid} online=1i 1700000000000",
    ])
    values = {"$park": f"p{uid}", "$enterprise": f"e{uid}", "$device": f"m{uid}",
              "$timeFilter": "time >= 1699999000000ms AND time < 1700001000000ms", "$__interval": "1m"}
    answered = 0
    for board in dashboards().values():
        queries = [v["query"] for v in board["templating"]["list"]]
        queries += [t["query"] for p in board["panels"] for t in p["targets"]]
        for query in queries:
            for var, value in values.items():
                query = query.replace(var, value)
            r = httpx.post(f"{influx_url}/query", data={"db": influx_db, "q": query})
            result = r.json()["results"][0]
            assert "error" not in result, (query, result)
            answered += bool(result.get("series"))
    assert answered >= 15


def test_committed_provisioning_matches_the_generator(tmp_path: Path) -> None:
    write_provisioning(tmp_path)
    for generated in tmp_path.rglob("*.*"):
        committed = DEFAULT_OUT / generated.relative_to(tmp_path)
        assert committed.read_text(encoding="utf-8") == generated.read_text(encoding="utf-8"), committed
    ds = yaml.safe_load((tmp_path / "provisioning" / "datasources" / "smartpark.yaml").read_text())
    assert ds["datasources"][0]["type"] == "influxdb" and ds["datasources"][0]["jsonData"]["dbName"] == "smartpark"
    assert json.loads((tmp_path / "dashboards" / "smartpark-park.json").read_text())["uid"] == "smartpark-park"
