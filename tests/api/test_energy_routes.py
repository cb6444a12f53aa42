"""Energy KPIs per device, enterprise and park over today, a month and a custom range, from counters written to
the real InfluxDB: replayed from telemetry, then from the rows `analytics backfill` stores; scoping, CSV and
parameter errors. Every expected figure is worked out by hand below."""

from __future__ import annotations

import csv
import io
import time

import httpx
import pytest

from analytics.backfill import backfill
from analytics.devices import build_index
from analytics.kernels import DAY_MS
from analytics.state import day_start_ms
from parkmodel.registry import Registry
from reports.periods import month_start_ms
from tests.api.conftest import ServeFactory
from tests.conftest import make_registry

QUARTER_MS = 15 * 60_000
IMPORT_PER_Q, PV_PER_Q, GAS_PER_Q = 10.0, 5.0, 2.0  # kWh, kWh, m³ per 15 minutes
START = month_start_ms(2026, 3) + 9 * DAY_MS  # 2026-03-10 00:00 Beijing time
DAYS = 3  # 2026-03-10 .. 03-12
QUARTERS = DAYS * 96  # 288
# Hand-computed over the three days (factors of analytics/data/factors.yaml):
IMPORT = QUARTERS * IMPORT_PER_Q  # 2,880 kWh from the grid
PV = QUARTERS * PV_PER_Q  # 1,440 kWh generated, none exported
GAS = QUARTERS * GAS_PER_Q  # 576 m³
CONSUMED = IMPORT + PV  # 4,320 kWh
TCE_EQUIVALENT = (CONSUMED * 0.1229 + GAS * 1.2143) / 1000  # 0.530928 + 0.6994368 = 1.2303648 tce
TCE_EQUAL_VALUE = (CONSUMED * 0.3024 + GAS * 1.2143) / 1000  # 1.306368 + 0.6994368 = 2.0058048 tce
SCOPE1_T = GAS * 2.1622 / 1000  # 1.2454272 t
SCOPE2_T = IMPORT * 0.6479 / 1000  # 1.865952 t (Inner Mongolia grid)


def registry_of(uid: str) -> Registry:
    return make_registry(uid, [
        {"id": f"m{uid}", "role": "grid_meter", "template": "acrel_dtsd1352"},
        {"id": f"pv{uid}", "role": "pv", "template": "huawei_sun2000", "rated_kw": 100},
        {"id": f"gas{uid}", "role": "gas_meter", "template": "gas_flowmeter_f64"},
    ], enterprises=2)


def counters(uid: str, start_ms: int, quarters: int, k0: int = 0) -> list[str]:
    """Line protocol of the three meters every 15 minutes from `start_ms`, `quarters` steps (quarters + 1 rows)."""
    tag = f"park=p{uid},enterprise=e{uid}-0"
    lines = []
    for k in range(quarters + 1):
        ts, n = start_ms + k * QUARTER_MS, k0 + k
        lines.append(f"telemetry,{tag},device=m{uid},role=grid_meter energy_import_kwh={1000 + n * IMPORT_PER_Q},"
                     f"energy_export_kwh=0.0 {ts}")
        lines.append(f"telemetry,{tag},device=pv{uid},role=pv energy_export_kwh={500 + n * PV_PER_Q} {ts}")
        lines.append(f"telemetry,{tag},device=gas{uid},role=gas_meter gas_volume_m3={20 + n * GAS_PER_Q} {ts}")
    return lines


def write(influx_url: str, db: str, lines: list[str]) -> None:
    r = httpx.post(f"{influx_url}/write", params={"db": db, "precision": "ms"}, content="\n".join(lines))
    assert r.status_code == 204, r.text


def assert_three_days(body: dict[str, object], source: str) -> None:
    e = body["electricity_kwh"]
    assert isinstance(e, dict)
    assert e["grid_import"] == pytest.approx(IMPORT) and e["grid_export"] == 0
    assert e["generation"] == pytest.approx(PV) and e["green_supply"] == 0
    assert e["consumed"] == pytest.approx(CONSUMED) and e["renewable_consumed"] == pytest.approx(PV)
    assert e["net_purchase"] == pytest.approx(IMPORT)
    assert body["gas_m3"] == pytest.approx(GAS) and body["steam_t"] == 0 and body["water_m3"] == 0
    assert body["tce"] == {"convention": "equivalent", "total": pytest.approx(TCE_EQUIVALENT),
                           "by_carrier": {"electricity": pytest.approx(CONSUMED * 0.1229 / 1000),
                                          "gas": pytest.approx(GAS * 1.2143 / 1000), "steam": 0.0, "water": None}}
    assert body["co2"] == {"total_t": pytest.approx(SCOPE1_T + SCOPE2_T), "scope1_t": pytest.approx(SCOPE1_T),
                           "scope2_t": pytest.approx(SCOPE2_T)}
    assert body["new_energy_ratio"] == pytest.approx(PV / CONSUMED)  # 1/3
    cov = body["coverage"]
    assert isinstance(cov, dict)
    assert cov["source"] == source and cov["days"] == DAYS and cov["days_with_data"] == DAYS
    assert cov["min_daily_coverage"] == pytest.approx(1.0)


async def test_energy_over_ranges_from_telemetry_and_stored_rows(serve: ServeFactory, influx_url: str,
                                                                 influx_db: str, uid: str) -> None:
    registry = registry_of(uid)
    write(influx_url, influx_db, counters(uid, START, QUARTERS))
    # Today: readings every quarter since 00:00 Beijing time up to now (k quarters of energy so far).
    now = int(time.time() * 1000)
    today = day_start_ms(now)
    k = (now - today) // QUARTER_MS
    write(influx_url, influx_db, counters(uid, today, k, k0=100_000))
    custom = {"start": "2026-03-10T00:00:00+08:00", "end": "2026-03-13T00:00:00+08:00"}
    e0, e1, p, m = f"e{uid}-0", f"e{uid}-1", f"p{uid}", f"m{uid}"

    async with serve(registry) as api, api.client(prefix="/api/v1") as ops:
        # A custom range, replayed from telemetry.
        r = await ops.get(f"/enterprises/{e0}/energy", params=custom)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["scope"], body["park"], body["enterprise"], body["period"]) == ("enterprise", p, e0, "custom")
        assert (body["start"], body["end"]) == (START, START + DAYS * DAY_MS)
        assert_three_days(body, "telemetry")
        park = (await ops.get(f"/parks/{p}/energy", params=custom)).json()
        assert_three_days(park, "telemetry")
        other = (await ops.get(f"/enterprises/{e1}/energy", params=custom)).json()
        assert other["electricity_kwh"]["consumed"] == 0 and other["coverage"]["days_with_data"] == DAYS
        # 等价值 on request.
        eqv = (await ops.get(f"/enterprises/{e0}/energy", params={**custom, "tce": "equal_value"})).json()
        assert eqv["tce"]["convention"] == "equal_value"
        assert eqv["tce"]["total"] == pytest.approx(TCE_EQUAL_VALUE)
        assert eqv["co2"] == body["co2"]  # CO2 does not depend on the tce convention

        # Devices: the grid meter's import, the PV inverter's generation (all consumed: ratio 1).
        meter = (await ops.get(f"/devices/{m}/energy", params=custom)).json()
        assert meter["role"] == "grid_meter" and meter["meter"]["import_kwh"] == pytest.approx(IMPORT)
        assert meter["electricity_kwh"]["grid_import"] == pytest.approx(IMPORT)
        assert meter["electricity_kwh"]["consumed"] == pytest.approx(IMPORT)
        assert meter["co2"]["scope2_t"] == pytest.approx(SCOPE2_T) and meter["new_energy_ratio"] == 0
        pv = (await ops.get(f"/devices/pv{uid}/energy", params=custom)).json()
        assert pv["electricity_kwh"]["generation"] == pytest.approx(PV) and pv["new_energy_ratio"] == pytest.approx(1)
        assert pv["co2"]["total_t"] == 0
        gas = (await ops.get(f"/devices/gas{uid}/energy", params=custom)).json()
        assert gas["gas_m3"] == pytest.approx(GAS) and gas["co2"]["scope1_t"] == pytest.approx(SCOPE1_T)

        # The month: the same three days (the month's other days hold no readings).
        month = (await ops.get(f"/enterprises/{e0}/energy", params={"period": "2026-03"})).json()
        assert (month["start"], month["end"]) == (month_start_ms(2026, 3), month_start_ms(2026, 4))
        assert month["electricity_kwh"]["consumed"] == pytest.approx(CONSUMED)
        assert month["gas_m3"] == pytest.approx(GAS) and month["coverage"]["days"] == 31

        # Today since 00:00 Beijing time: k quarters.
        td = (await ops.get(f"/enterprises/{e0}/energy", params={"period": "today"})).json()
        assert (td["period"], td["start"], td["end"]) == ("today", today, today + DAY_MS)
        assert td["electricity_kwh"]["grid_import"] == pytest.approx(k * IMPORT_PER_Q)
        assert td["electricity_kwh"]["consumed"] == pytest.approx(k * (IMPORT_PER_Q + PV_PER_Q))
        assert td["coverage"]["days"] == 1
        default = (await ops.get(f"/enterprises/{e0}/energy")).json()
        assert default["period"] == "today" and default["electricity_kwh"] == td["electricity_kwh"]

        # Stored rows (smartpark analytics backfill, with device rows) answer the same.
        async with httpx.AsyncClient(base_url=influx_url) as client:
            await backfill(client, influx_db, build_index(registry), START, START + DAYS * DAY_MS, devices=True)
        stored = (await ops.get(f"/enterprises/{e0}/energy", params=custom)).json()
        assert_three_days(stored, "stored")
        stored_meter = (await ops.get(f"/devices/{m}/energy", params=custom)).json()
        assert stored_meter["coverage"]["source"] == "stored"
        assert stored_meter["meter"]["import_kwh"] == pytest.approx(IMPORT)

        # CSV: one row, the same figures.
        r = await ops.get(f"/parks/{p}/energy", params={**custom, "format": "csv"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert f'filename="{p}-energy-custom.csv"' in r.headers["content-disposition"]
        (row,) = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
        assert float(row["consumed_kwh"]) == pytest.approx(CONSUMED)
        assert float(row["tce"]) == pytest.approx(TCE_EQUIVALENT)
        assert row["start"] == "2026-03-10T00:00:00+08:00" and row["source"] == "stored"


async def test_energy_scoping_and_bad_parameters(serve: ServeFactory, uid: str) -> None:
    e0, e1, p, m = f"e{uid}-0", f"e{uid}-1", f"p{uid}", f"m{uid}"
    async with serve(registry_of(uid)) as api:
        async with api.client("enterprise", e0, prefix="/api/v1") as ent:
            assert (await ent.get(f"/enterprises/{e0}/energy")).status_code == 200
            assert (await ent.get(f"/devices/{m}/energy")).status_code == 200
            r = await ent.get(f"/enterprises/{e1}/energy")
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
            assert (await ent.get(f"/parks/{p}/energy")).json()["error"]["code"] == "forbidden"
        async with api.client("enterprise", e1, prefix="/api/v1") as other:
            assert (await other.get(f"/devices/{m}/energy")).status_code == 404
        async with api.client("emergency", prefix="/api/v1") as emg:
            for path in (f"/enterprises/{e0}/energy", f"/parks/{p}/energy", f"/devices/{m}/energy"):
                r = await emg.get(path)
                assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", path
        async with api.client(prefix="/api/v1") as ops:
            assert (await ops.get(f"/parks/p{uid}x/energy")).status_code == 404
            for params, param in (({"period": "yesterday"}, "period"), ({"period": "2026-13"}, "period"),
                                  ({"period": "2026-10/12m"}, "period"),
                                  ({"start": "2026-03-10T00:00:00"}, "start"),
                                  ({"start": "2026-03-10T00:00:00+08:00", "period": "month"}, "period"),
                                  ({"end": "1773072000000"}, "start"),
                                  ({"start": "1773158400000", "end": "1773072000000"}, "end"),
                                  ({"start": "86400000", "end": "4102444800000"}, "end"),
                                  ({"start": "0"}, "start"), ({"start": "1773158400000", "end": "9" * 17}, "end"),
                                  ({"period": "3000"}, "period"),
                                  ({"tce": "bogus"}, "tce"), ({"format": "xml"}, "format")):
                r = await ops.get(f"/parks/{p}/energy", params=params)
                assert r.status_code == 422, (params, r.text)
                error = r.json()["error"]
                assert error["code"] == "invalid_request", params
                details = error["details"]
                named = details["param"] if isinstance(details, dict) else details[0]["param"]
                assert named == param, (params, error)
