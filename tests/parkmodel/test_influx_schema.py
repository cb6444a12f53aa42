"""Retention policies and continuous queries against the real influxd; the settings that drive them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from smartpark.config import ConfigError, InfluxSettings, influx_duration_s, load_settings
from smartpark.influx_schema import (
    KPI_KEYS,
    backfill_rollups,
    continuous_queries,
    ensure_schema,
    kpi_aggregate,
    telemetry_aggregate,
)


@pytest.fixture
async def http(influx_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=influx_url) as client:
        yield client


@pytest.fixture
def database(influx_url: str, uid: str) -> Any:
    """A database name of the test's own that ensure_schema itself creates; dropped afterwards."""
    name = f"schema_{uid}"
    yield name
    httpx.post(f"{influx_url}/query", data={"q": f'DROP DATABASE "{name}"'})


async def _rows(http: httpx.AsyncClient, db: str, q: str) -> list[dict[str, Any]]:
    body = (await http.post("/query", data={"q": q, "db": db, "epoch": "ms"})).json()
    result = body["results"][0]
    assert "error" not in result, result
    return [dict(zip(s["columns"], v, strict=True)) for s in result.get("series", []) for v in s["values"]]


async def _cqs(http: httpx.AsyncClient, db: str) -> dict[str, str]:
    body = (await http.post("/query", data={"q": "SHOW CONTINUOUS QUERIES"})).json()
    for series in body["results"][0].get("series", []):
        if series["name"] == db:
            return {name: query for name, query in series.get("values", [])}
    return {}


async def test_ensure_schema_is_idempotent_and_follows_the_settings(http: httpx.AsyncClient, influx_url: str,
                                                                    database: str) -> None:
    settings = InfluxSettings(url=influx_url, database=database)
    await ensure_schema(http, settings)
    await ensure_schema(http, settings)  # again: nothing to change, nothing fails
    rps = {r["name"]: r for r in await _rows(http, database, f'SHOW RETENTION POLICIES ON "{database}"')}
    assert rps["raw"]["default"] is True and influx_duration_s(rps["raw"]["duration"]) == 30 * 86_400
    assert influx_duration_s(rps["rollup_1m"]["duration"]) == 730 * 86_400 and not rps["rollup_1m"]["default"]
    assert influx_duration_s(rps["rollup_1h"]["duration"]) == 3650 * 86_400
    cqs = await _cqs(http, database)
    assert set(cqs) == {"sp_telemetry_rollup_1m", "sp_kpi_rollup_1m", "sp_telemetry_rollup_1h", "sp_kpi_rollup_1h"}
    assert "RESAMPLE EVERY 1m FOR 10m" in cqs["sp_telemetry_rollup_1m"]
    assert f"INTO {database}.rollup_1m.telemetry FROM {database}.raw.telemetry" in cqs["sp_telemetry_rollup_1m"]
    assert "GROUP BY time(1m), *" in cqs["sp_telemetry_rollup_1m"]
    assert "mean(active_power_kw) AS active_power_kw" in cqs["sp_telemetry_rollup_1m"]
    assert "last(energy_import_kwh) AS energy_import_kwh" in cqs["sp_telemetry_rollup_1m"]
    assert "max(smoke_alarm) AS smoke_alarm" in cqs["sp_telemetry_rollup_1m"]
    assert f"FROM {database}.rollup_1m.kpi" in cqs["sp_kpi_rollup_1h"]

    # Writes without a policy (ingest, analytics) land in raw, the default.
    r = await http.post("/write", params={"db": database, "precision": "ms"},
                        content="telemetry,device=m-1 active_power_kw=5 1700000000000\n"
                                f"telemetry,device=m-1 active_power_kw=6 {int(2e12)}")
    assert r.status_code in (204, 400)  # the 2023 point is older than 30 days: dropped by retention
    assert [row["active_power_kw"] for row in await _rows(http, database, 'SELECT * FROM "raw"."telemetry"')] == [6]

    # Changed settings: durations altered, a renamed rollup policy gets its CQs redefined.
    changed = InfluxSettings(url=influx_url, database=database, raw_retention="7d", rollup_1m_rp="minutes")
    await ensure_schema(http, changed)
    rps = {r["name"]: r for r in await _rows(http, database, f'SHOW RETENTION POLICIES ON "{database}"')}
    assert influx_duration_s(rps["raw"]["duration"]) == 7 * 86_400 and rps["raw"]["default"] is True
    assert "minutes" in rps
    cqs = await _cqs(http, database)
    assert len(cqs) == 4
    assert f"INTO {database}.minutes.telemetry" in cqs["sp_telemetry_rollup_1m"]
    assert f"FROM {database}.minutes.telemetry" in cqs["sp_telemetry_rollup_1h"]


async def test_backfill_rolls_up_with_the_cq_aggregates(http: httpx.AsyncClient, influx_url: str,
                                                        database: str) -> None:
    settings = InfluxSettings(url=influx_url, database=database)
    await ensure_schema(http, settings)
    hour = 3_600_000
    start = (2_000_000_000_000 // hour - 1) * hour  # in the future: never past the raw retention
    lines = [f"telemetry,park=p,enterprise=e,device=m-1,role=grid_meter active_power_kw={i},"
             f"energy_import_kwh={100 + i} {start + i * 10_000}" for i in range(360)]
    lines += [f"kpi,scope=park,park=p load_kw={i},consumed_today_kwh={i * 2} {start + i * 10_000}" for i in range(360)]
    assert (await http.post("/write", params={"db": database, "precision": "ms"},
                            content="\n".join(lines))).status_code == 204
    written = await backfill_rollups(http, settings, start, start + hour)
    assert written == {"rollup_1m": 120, "rollup_1h": 2}
    minute = await _rows(http, database, 'SELECT * FROM "rollup_1m"."telemetry" WHERE "device" = \'m-1\'')
    assert len(minute) == 60 and minute[0]["active_power_kw"] == 2.5 and minute[0]["energy_import_kwh"] == 105
    assert minute[0]["role"] == "grid_meter"  # GROUP BY *: tags stay tags
    hourly = await _rows(http, database, 'SELECT * FROM "rollup_1h"."kpi"')
    assert hourly == [{"time": start, "scope": "park", "park": "p", "load_kw": 179.5, "consumed_today_kwh": 718,
                       **{k: None for k in hourly[0] if k not in ("time", "scope", "park", "load_kw",
                                                                   "consumed_today_kwh")}}]


def test_aggregates_fit_the_kind_of_value() -> None:
    assert (telemetry_aggregate("active_power_kw"), telemetry_aggregate("energy_import_kwh"),
            telemetry_aggregate("smoke_alarm")) == ("mean", "last", "max")
    assert (kpi_aggregate("load_kw"), kpi_aggregate("consumed_today_kwh"), kpi_aggregate("max_demand_month_kw")) == (
        "mean", "last", "last")


def test_kpi_keys_match_what_analytics_writes() -> None:
    from analytics.aggregate import KPI_KEYS as WRITTEN

    assert KPI_KEYS == WRITTEN


def test_cq_statements_quote_names() -> None:
    cqs = continuous_queries(InfluxSettings(database="park_db", rollup_1h_rp="hourly"))
    assert cqs["sp_kpi_rollup_1h"].startswith('CREATE CONTINUOUS QUERY "sp_kpi_rollup_1h" ON "park_db" '
                                              "RESAMPLE EVERY 1h FOR 3h BEGIN SELECT ")
    assert 'INTO "park_db"."hourly"."kpi" FROM "park_db"."rollup_1m"."kpi" GROUP BY time(3600s), * END' in (
        cqs["sp_kpi_rollup_1h"])


@pytest.mark.parametrize(("yaml_text", "key", "expected"), [
    ("influx:\n  raw_retention: 5y\n", "influx.raw_retention", "1825d"),
    ("influx:\n  rollup_1m_retention: 30 days\n", "influx.rollup_1m_retention", "InfluxDB duration"),
    ("influx:\n  rollup_1h_retention: 10m\n", "influx.rollup_1h_retention", "minimum retention of 1h"),
    ("influx:\n  rollup_1h_rp: 'x; DROP'\n", "influx.rollup_1h_rp", "pattern"),
    ("influx:\n  rollup_1m_rp: raw\n", "influx", "three different names"),
])
def test_config_errors_name_file_and_key(tmp_path: Path, yaml_text: str, key: str, expected: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_settings(f)
    assert str(f) in str(err.value) and f"  {key}:" in str(err.value) and expected in str(err.value)


def test_durations_accepted() -> None:
    s = load_settings(influx={"raw_retention": "1d12h", "rollup_1m_retention": "104w", "rollup_1h_retention": "INF"})
    assert (s.influx.raw_retention, s.influx.rollup_1h_retention) == ("1d12h", "INF")
    assert influx_duration_s("1d12h") == 129_600 and influx_duration_s("720h0m0s") == 2_592_000
