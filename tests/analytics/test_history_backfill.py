"""`simulate history` into the real influxd, then the backfill over it: balanced numbers, counters that the
live simulator continues, and `energy` rows written."""

from __future__ import annotations

import time

import httpx
import pytest

from analytics import kernels as k
from analytics.backfill import backfill
from analytics.devices import F_EXPORT, F_IMPORT, build_index
from analytics.state import day_start_ms
from edge_agent.registermap import load_template
from simulators.history import plan_history, write_history
from simulators.model import DeviceSim, device_rng
from smartpark.config import InfluxSettings
from tests.conftest import make_registry

pytestmark = pytest.mark.integration
# Yesterday 00:00 Beijing: inside the raw retention, where `simulate history` writes recent days for backfill.
DAY = day_start_ms(int(time.time() * 1000)) - k.DAY_MS


async def test_history_day_backfills_to_balanced_figures(influx_url: str, influx_db: str, uid: str) -> None:
    registry = make_registry(uid, [
        {"id": f"grid{uid}", "role": "grid_meter", "template": "acrel_dtsd1352", "rated_kw": 800},
        {"id": f"load{uid}", "role": "load_meter", "template": "acrel_dtsd1352", "rated_kw": 500,
         "parent": f"grid{uid}"},
        {"id": f"pv{uid}", "role": "pv", "template": "huawei_sun2000", "rated_kw": 300},
        {"id": f"gas{uid}", "role": "gas_meter", "template": "gas_flowmeter_f64"},
    ])
    gen = plan_history(registry, 1, end_s=(DAY + k.DAY_MS) / 1000, seed=3)
    lines = await write_history(gen, InfluxSettings(url=influx_url, database=influx_db), progress=False)
    assert lines == 1440 * 4

    index = build_index(registry)
    async with httpx.AsyncClient(base_url=influx_url, timeout=30) as client:
        result = await backfill(client, influx_db, index, DAY, DAY + k.DAY_MS, devices=True, keep_figures=True)
        r = await client.get("/query", params={"db": influx_db, "epoch": "ms", "q":
                             f"SELECT last(energy_import_kwh) FROM telemetry WHERE device='grid{uid}'"})
        last_grid = r.json()["results"][0]["series"][0]["values"][0][1]
        r = await client.get("/query", params={"db": influx_db, "q":
                             "SELECT count(consumed_kwh) FROM energy GROUP BY scope, \"window\""})
        counts = {(s["tags"]["scope"], s["tags"]["window"]): s["values"][0][1] for s in r.json()["results"][0]["series"]}
    assert result.days == 1
    assert counts == {("park", "hour"): 24, ("park", "day"): 1, ("enterprise", "hour"): 24, ("enterprise", "day"): 1}
    day = result.figures[-1]
    assert day.window == "day" and day.start_ms == DAY
    ent = {key: float(v[0]) for key, v in day.enterprise.items()}
    load = day.device[index.position[f"load{uid}"], F_IMPORT]
    pv = day.device[index.position[f"pv{uid}"], F_EXPORT]
    # The meters balance (simulators.model): grid import − export + PV = the loads, to the meters' 0.05 % gain
    # error and the registers' resolution; the step from the day's last reading to midnight is not in the data.
    assert ent["consumed_kwh"] == pytest.approx(load, rel=0.002)
    assert ent["generation_kwh"] == pytest.approx(pv) and pv > 100
    assert ent["gas_m3"] == pytest.approx(0.03 * load, rel=0.1)  # simulators.model.GAS_M3_PER_KWH × spread
    assert 0 < ent["new_energy_ratio"] < 1 and ent["coverage"] > 0.99
    hourly = sum(f.enterprise["consumed_kwh"][0] for f in result.figures[:24])
    assert hourly == pytest.approx(ent["consumed_kwh"])
    # The history ends where the live simulator (same seed) starts its counters: live data continues them.
    ref = registry.device(f"grid{uid}")
    assert ref is not None
    live = DeviceSim(ref, load_template("acrel_dtsd1352"), 1, device_rng(3, f"grid{uid}"))
    assert last_grid == pytest.approx(live.counters["energy_import_kwh"], abs=0.02)
