"""History read from the 1-minute and 1-hour rollups (filled by hand with the CQs' own SELECT ... INTO), raw
before they hold data, and the two stitched where the rollup ends; against the real influxd."""

from __future__ import annotations

import time

import httpx
from hypothesis import given
from hypothesis import strategies as st

from api.queries import auto_every, history_sources
from smartpark.config import InfluxSettings
from smartpark.influx_schema import backfill_rollups, ensure_schema
from tests.api.conftest import ServeFactory
from tests.api.scoped import scoped_registry
from tests.api.test_telemetry_routes import write_lines
from tests.conftest import make_registry

HOUR_MS = 3_600_000


@given(st.integers(min_value=1, max_value=400 * 86_400_000))
def test_the_range_picks_the_source(range_ms: int) -> None:
    every = auto_every(range_ms)
    names = [s.name for s in history_sources(InfluxSettings(), every)]
    assert names[-1] == "raw"
    if range_ms > 2000 * HOUR_MS:  # a long range: hourly buckets, the 1-hour rollup first
        assert names[0] == "rollup_1h"
    elif range_ms > 2000 * 60_000:
        assert names[0] in ("rollup_1m", "rollup_1h")
    elif range_ms <= 2000 * 1000:
        assert names == ["raw"]


async def test_device_history_reads_rollups_then_raw(serve: ServeFactory, influx_url: str, influx_db: str,
                                                     uid: str) -> None:
    settings = InfluxSettings(url=influx_url, database=influx_db)
    async with httpx.AsyncClient(base_url=influx_url) as http:
        await ensure_schema(http, settings)
    h0 = (int(time.time() * 1000) // HOUR_MS - 4) * HOUR_MS  # four hours ago, hour-aligned
    tags = f"park=p{uid},enterprise=e{uid}-0,device=m{uid},role=grid_meter"
    # Three hours, a reading every 10 s: power = index, energy counts up 0.1 kWh a reading; one smoke blip.
    lines = [f"telemetry,{tags} active_power_kw={i}.0,energy_import_kwh={1000 + i / 10},smoke_alarm="
             f"{1 if i == 400 else 0} {h0 + i * 10_000}" for i in range(3 * 360)]
    write_lines(influx_url, influx_db, lines)
    hourly_means = [h * 360 + 179.5 for h in range(3)]
    hourly_last = [1000 + (h * 360 + 359) / 10 for h in range(3)]
    params = {"start": h0, "end": h0 + 4 * HOUR_MS, "every": "1h"}
    async with serve(make_registry(uid)) as api, api.client(prefix="/api/v1") as client:
        before = (await client.get(f"/devices/m{uid}/history", params=params)).json()
        assert before["source"] == "raw"  # just after start: no rollup yet
        assert [p["active_power_kw"] for p in before["points"]] == hourly_means
        assert [p["energy_import_kwh"] for p in before["points"]] == hourly_last  # last, not a mean, of a counter
        assert [p["smoke_alarm"] for p in before["points"]] == [0, 1, 0]  # max: the blip shows

        # The CQs' work, forced by hand for the first two hours only.
        async with httpx.AsyncClient(base_url=influx_url) as http:
            await backfill_rollups(http, settings, h0, h0 + 2 * HOUR_MS)
        after = (await client.get(f"/devices/m{uid}/history", params=params)).json()
        assert after["source"] == "rollup_1h"
        assert [(s["source"], s["start"], s["end"]) for s in after["segments"]] == [
            ("rollup_1h", h0, h0 + 2 * HOUR_MS), ("raw", h0 + 2 * HOUR_MS, h0 + 4 * HOUR_MS)]
        assert after["points"] == before["points"]  # the rollups and raw data agree

        minutes = (await client.get(f"/devices/m{uid}/history",
                                    params={"start": h0, "end": h0 + HOUR_MS, "every": "5m",
                                            "fields": "active_power_kw"})).json()
        assert minutes["source"] == "rollup_1m" and minutes["every_s"] == 300 and len(minutes["points"]) == 12
        assert [p["active_power_kw"] for p in minutes["points"]] == [30 * k + 14.5 for k in range(12)]

        # Data the rollups never saw differs from what they hold: proof that the hour buckets come from them.
        write_lines(influx_url, influx_db, [f"telemetry,{tags} active_power_kw=1e6 {h0 + 5_000}"])
        again = (await client.get(f"/devices/m{uid}/history", params=params)).json()
        assert again["points"][0]["active_power_kw"] == hourly_means[0]

        # Sixty days without `every`: hourly buckets (≤ 2000 points), the rolled-up hours from the 1-hour rollup.
        days = (await client.get(f"/devices/m{uid}/history",
                                 params={"start": h0 + 4 * HOUR_MS - 60 * 86_400_000, "end": h0 + 4 * HOUR_MS,
                                         "fields": "active_power_kw"})).json()
        assert days["every_s"] == 3600 and days["source"] == "rollup_1h" and len(days["points"]) == 3
        assert [s["source"] for s in days["segments"]] == ["raw", "rollup_1h", "raw"]
        assert [p["active_power_kw"] for p in days["points"]] == hourly_means


async def test_kpi_history_reads_the_rollup(serve: ServeFactory, influx_url: str, influx_db: str, uid: str) -> None:
    settings = InfluxSettings(url=influx_url, database=influx_db)
    async with httpx.AsyncClient(base_url=influx_url) as http:
        await ensure_schema(http, settings)
    a = f"a{uid}"
    h0 = (int(time.time() * 1000) // HOUR_MS - 3) * HOUR_MS
    write_lines(influx_url, influx_db, [
        f"kpi,scope=park,park={a} load_kw={i},consumed_today_kwh={2.0 * i} {h0 + i * 10_000}" for i in range(720)])
    async with httpx.AsyncClient(base_url=influx_url) as http:
        await backfill_rollups(http, settings, h0, h0 + 2 * HOUR_MS)
    async with serve(scoped_registry(uid)) as api, api.client(prefix="/api/v1") as client:
        body = (await client.get(f"/parks/{a}/kpi/history",
                                 params={"start": h0, "end": h0 + 2 * HOUR_MS, "every": "1h"})).json()
        assert body["source"] == "rollup_1h" and body["fields"] == ["load_kw", "consumed_today_kwh"]
        assert [p["load_kw"] for p in body["points"]] == [179.5, 539.5]
        assert [p["consumed_today_kwh"] for p in body["points"]] == [718.0, 1438.0]
        minute = (await client.get(f"/parks/{a}/kpi/history",
                                   params={"start": h0, "end": h0 + 600_000, "every": "1m",
                                           "fields": "load_kw"})).json()
        assert minute["source"] == "rollup_1m" and [p["load_kw"] for p in minute["points"]][:2] == [2.5, 8.5]
