"""/latest and /history against the real influxd, with telemetry written directly as line protocol."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.api.conftest import ServeFactory
from tests.conftest import make_registry

MINUTE_MS = 60_000


def write_lines(influx_url: str, db: str, lines: list[str]) -> None:
    r = httpx.post(f"{influx_url}/write", params={"db": db, "precision": "ms"}, content="\n".join(lines))
    assert r.status_code == 204, r.text


@pytest.fixture
def telemetry(influx_url: str, influx_db: str, uid: str) -> dict[str, int]:
    """Ten minutes of one reading per second for the grid meter; power ramps 0..599 kW."""
    start = (int(time.time() * 1000) // MINUTE_MS - 20) * MINUTE_MS  # minute-aligned, 20 min ago
    tags = f"park=p{uid},enterprise=e{uid}-0,device=m{uid},role=grid_meter"
    lines = [f"telemetry,{tags} active_power_kw={i}.0,voltage_v=400.0 {start + i * 1000}" for i in range(600)]
    # A later reading carrying only the counter: /latest must keep each field's own timestamp.
    lines.append(f"telemetry,{tags} energy_import_kwh=1234.5 {start + 700_000}")
    # Another device's data must never leak into this one's answers.
    lines.append(f"telemetry,park=p{uid},enterprise=e{uid}-0,device=pv{uid},role=pv active_power_kw=-1 {start}")
    write_lines(influx_url, influx_db, lines)
    return {"start": start, "end": start + 600_000}


async def test_latest_has_each_fields_last_value_and_time(serve: ServeFactory, uid: str,
                                                          telemetry: dict[str, int]) -> None:
    async with serve(make_registry(uid)) as api, api.client() as client:
        body = (await client.get(f"/api/v1/devices/m{uid}/latest")).json()
    start = telemetry["start"]
    assert body["fields"]["active_power_kw"] == {"value": 599.0, "ts": start + 599_000}
    assert body["fields"]["voltage_v"] == {"value": 400.0, "ts": start + 599_000}
    assert body["fields"]["energy_import_kwh"] == {"value": 1234.5, "ts": start + 700_000}
    assert body["ts"] == start + 700_000
    assert set(body["fields"]) == {"active_power_kw", "voltage_v", "energy_import_kwh"}


async def test_latest_of_a_silent_device_is_empty(serve: ServeFactory, uid: str) -> None:
    async with serve(make_registry(uid)) as api, api.client() as client:
        r = await client.get(f"/api/v1/devices/m{uid}/latest")
    assert r.status_code == 200
    assert r.json()["fields"] == {} and r.json()["ts"] is None


async def test_history_downsamples_to_means(serve: ServeFactory, uid: str, telemetry: dict[str, int]) -> None:
    start, end = telemetry["start"], telemetry["end"]
    async with serve(make_registry(uid)) as api, api.client() as client:
        body = (await client.get(f"/api/v1/devices/m{uid}/history",
                                 params={"start": start, "end": end, "fields": "active_power_kw", "every": "1m"})).json()
        assert body["every_s"] == 60 and body["fields"] == ["active_power_kw"]
        assert len(body["points"]) == 10
        # minute k holds 60k..60k+59: mean 60k + 29.5
        assert [p["active_power_kw"] for p in body["points"]] == [60 * k + 29.5 for k in range(10)]
        assert [p["ts"] for p in body["points"]] == [start + k * MINUTE_MS for k in range(10)]

        # ISO 8601 with an offset; no `every`: 10 min / 2000 buckets -> 1 s buckets (raw resolution).
        iso = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(start / 1000))
        auto = (await client.get(f"/api/v1/devices/m{uid}/history",
                                 params={"start": iso, "end": end, "fields": "voltage_v,active_power_kw"})).json()
        assert auto["every_s"] == 1 and len(auto["points"]) == 600
        assert auto["points"][5] == {"ts": start + 5000, "voltage_v": 400.0, "active_power_kw": 5.0}

        # A day: the automatic interval keeps the answer at or under ~2000 buckets.
        day = (await client.get(f"/api/v1/devices/m{uid}/history",
                                params={"start": end - 86_400_000, "end": end})).json()
        assert day["every_s"] == 60 and len(day["points"]) == 10
        assert set(day["fields"]) == {"active_power_kw", "voltage_v"}  # every field when none is asked for


@pytest.mark.parametrize(("params", "param"), [
    ({"fields": 'active_power_kw") FROM x;--'}, "fields"),
    ({"fields": "active_power_kw,nonsense"}, "fields"),
    ({"start": "yesterday"}, "start"),
    ({"start": "2024-05-01T08:00:00"}, "start"),  # no time zone
    ({"start": "1700000000000", "end": "1600000000000"}, "start"),
    ({"every": "5 minutes"}, "every"),
    ({"every": "1s", "start": "0", "end": "86400000"}, "every"),  # far too many points
    ({"end": "1' OR '1'='1"}, "end"),
])
async def test_history_rejects_bad_input(serve: ServeFactory, uid: str, params: dict[str, str], param: str) -> None:
    async with serve(make_registry(uid)) as api, api.client() as client:
        r = await client.get(f"/api/v1/devices/m{uid}/history", params=params)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request" and error["details"]["param"] == param


async def test_history_of_unknown_device_is_404(serve: ServeFactory, uid: str) -> None:
    async with serve(make_registry(uid)) as api, api.client() as client:
        r = await client.get(f"/api/v1/devices/x{uid}/history")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = await client.get('/api/v1/devices/m{uid}"; DROP/history')
        assert r.status_code in (404, 422) and "error" in r.json()
