"""KPI rows for InfluxDB, the catch-up answer parser, and the CLI's config errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from analytics.cli import app
from analytics.devices import F_EXPORT, F_IMPORT, build_index
from analytics.influx import InfluxError, kpi_lines, parse_today_counters
from tests.conftest import make_registry


def test_kpi_lines_tag_scope_and_omit_null_ratio() -> None:
    msg = {"kpi": {"load_kw": 1.5, "new_energy_ratio_today": None},
           "enterprises": {"e-1": {"load_kw": 1.5, "new_energy_ratio_today": 0.25}}}
    assert kpi_lines("p-1", msg, 1000) == [
        "kpi,park=p-1,scope=park load_kw=1.5 1000",
        "kpi,enterprise=e-1,park=p-1,scope=enterprise load_kw=1.5,new_energy_ratio_today=0.25 1000",
    ]


def test_parse_today_counters_keeps_known_devices_and_counter_fields(uid: str) -> None:
    index = build_index(make_registry(uid))
    answer = {"results": [{"statement_id": 0, "series": [
        {"name": "telemetry", "tags": {"device": f"m{uid}"},
         "columns": ["time", "first_active_power_kw", "first_energy_import_kwh", "first_energy_export_kwh",
                     "last_active_power_kw", "last_energy_import_kwh", "last_energy_export_kwh"],
         "values": [[0, 5, 10, None, 6, 12, None]]},
        {"name": "telemetry", "tags": {"device": "someone-else"}, "columns": ["time", "first_water_m3", "last_water_m3"],
         "values": [[0, 1, 2]]},
    ]}]}
    dev, fld, first, last = parse_today_counters(answer, index)
    assert dev.tolist() == [index.position[f"m{uid}"]] and fld.tolist() == [F_IMPORT]
    assert (first.tolist(), last.tolist()) == ([10.0], [12.0])
    assert F_EXPORT not in fld
    with pytest.raises(InfluxError, match="database not found"):
        parse_today_counters({"results": [{"error": "database not found: x"}]}, index)


def test_cli_names_the_bad_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("analytics:\n  publish_interval_s: 60\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["--config", str(config)])
    assert result.exit_code == 2
    assert "analytics.publish_interval_s" in result.output and str(config) in result.output
