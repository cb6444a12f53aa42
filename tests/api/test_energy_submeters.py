"""Energy of sub-meters and storage per device, the replay's device subset and its range cap, against the real
InfluxDB: a load meter's import is what it consumed, a storage unit's charge is an import and its discharge an
export. Expected figures are worked out by hand (factors of analytics/data/factors.yaml)."""

from __future__ import annotations

import pytest

from analytics.devices import build_index
from analytics.kernels import DAY_MS
from api.routes.energy import MAX_REPLAY_DAYS, scope_registry
from parkmodel.registry import Registry
from reports.periods import month_start_ms
from tests.api.conftest import ServeFactory
from tests.api.test_energy_routes import QUARTER_MS, write
from tests.conftest import make_registry

START = month_start_ms(2026, 3) + 9 * DAY_MS  # 2026-03-10 00:00 Beijing time, one day of readings
GRID_PER_Q, LOAD_PER_Q, CHARGE_PER_Q, DISCHARGE_PER_Q = 10.0, 4.0, 2.0, 1.5  # kWh per 15 minutes
LOAD = 96 * LOAD_PER_Q  # 384 kWh consumed behind the sub-meter
CHARGE, DISCHARGE = 96 * CHARGE_PER_Q, 96 * DISCHARGE_PER_Q  # 192 kWh in, 144 kWh out
ONE_DAY = {"start": "2026-03-10T00:00:00+08:00", "end": "2026-03-11T00:00:00+08:00"}


def registry_of(uid: str) -> Registry:
    return make_registry(uid, [
        {"id": f"m{uid}", "role": "grid_meter", "template": "acrel_dtsd1352"},
        {"id": f"sub{uid}", "role": "load_meter", "template": "acrel_dtsd1352", "parent": f"m{uid}"},
        {"id": f"st{uid}", "role": "storage", "template": "storage_pcs", "rated_kw": 500},
    ], enterprises=2)


def lines(uid: str) -> list[str]:
    tag = f"park=p{uid},enterprise=e{uid}-0"
    out = []
    for k in range(97):
        ts = START + k * QUARTER_MS
        out.append(f"telemetry,{tag},device=m{uid},role=grid_meter energy_import_kwh={k * GRID_PER_Q},"
                   f"energy_export_kwh=0.0 {ts}")
        out.append(f"telemetry,{tag},device=sub{uid},role=load_meter energy_import_kwh={k * LOAD_PER_Q},"
                   f"energy_export_kwh=0.0 {ts}")
        out.append(f"telemetry,{tag},device=st{uid},role=storage energy_import_kwh={k * CHARGE_PER_Q},"
                   f"energy_export_kwh={k * DISCHARGE_PER_Q} {ts}")
    return out


def test_a_replay_reads_only_the_devices_of_its_scope(uid: str) -> None:
    registry = registry_of(uid)
    assert build_index(scope_registry(registry, f"p{uid}", f"e{uid}-0", f"sub{uid}")).device_ids == (f"sub{uid}",)
    ent = build_index(scope_registry(registry, f"p{uid}", f"e{uid}-1"))
    assert (ent.enterprise_ids, ent.device_ids) == ((f"e{uid}-1",), ())
    assert len(build_index(scope_registry(registry, f"p{uid}")).device_ids) == 3


async def test_load_meter_and_storage_report_what_they_consumed(serve: ServeFactory, influx_url: str,
                                                                influx_db: str, uid: str) -> None:
    write(influx_url, influx_db, lines(uid))
    async with serve(registry_of(uid)) as api, api.client(prefix="/api/v1") as ops:
        sub = (await ops.get(f"/devices/sub{uid}/energy", params=ONE_DAY)).json()
        assert sub["role"] == "load_meter" and sub["meter"]["import_kwh"] == pytest.approx(LOAD)
        assert sub["electricity_kwh"]["consumed"] == pytest.approx(LOAD)
        assert sub["tce"]["total"] == pytest.approx(LOAD * 0.1229 / 1000)  # 0.0471936 tce
        assert sub["co2"]["scope2_t"] == pytest.approx(LOAD * 0.6479 / 1000)

        st = (await ops.get(f"/devices/st{uid}/energy", params=ONE_DAY)).json()
        e = st["electricity_kwh"]
        assert (e["grid_import"], e["grid_export"]) == (pytest.approx(CHARGE), pytest.approx(DISCHARGE))
        assert e["consumed"] == pytest.approx(CHARGE - DISCHARGE)  # 48 kWh of losses
        assert st["tce"]["total"] == pytest.approx((CHARGE - DISCHARGE) * 0.1229 / 1000)

        # The enterprise still counts the grid meter only: the sub-meter measured part of it.
        ent = (await ops.get(f"/enterprises/e{uid}-0/energy", params=ONE_DAY)).json()
        assert ent["electricity_kwh"]["grid_import"] == pytest.approx(96 * GRID_PER_Q)


async def test_a_replay_longer_than_the_cap_asks_for_a_backfill(serve: ServeFactory, uid: str) -> None:
    too_long = {"start": "2024-01-01T00:00:00+08:00", "end": "2025-03-01T00:00:00+08:00"}  # 425 days
    async with serve(registry_of(uid)) as api, api.client(prefix="/api/v1") as ops:
        r = await ops.get(f"/enterprises/e{uid}-0/energy", params=too_long)
        assert r.status_code == 422, r.text
        assert f"at most {MAX_REPLAY_DAYS} days" in r.text and "smartpark analytics backfill" in r.text
        ok = await ops.get(f"/enterprises/e{uid}-0/energy",
                           params={"start": "2024-01-01T00:00:00+08:00", "end": "2025-01-01T00:00:00+08:00"})
        assert ok.status_code == 200 and ok.json()["coverage"]["source"] == "none"
