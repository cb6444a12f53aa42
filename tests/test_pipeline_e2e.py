"""The whole pipeline on real components: a value set in a simulated device's registers arrives, decoded, in
InfluxDB and through the API; KPIs appear for every park.

Simulated Modbus TCP devices → edge agent → Mosquitto → ingest → influxd → analytics → API, in one loop.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from deploy.services import RunningService
from deploy.stack import LocalStack
from smartpark.config import load_settings
from tests.conftest import make_registry

# (device suffix, role, template, point, value): one per template, so every type and byte/word order in the
# shipped templates travels the whole path. Values are exactly representable in their register encoding.
CASES = [
    ("grid", "grid_meter", "acrel_dtsd1352", "active_power_kw", 1234.567),  # int32 CDAB, scale 0.001
    ("load", "load_meter", "eastron_sdm630", "energy_import_kwh", 4321.5),  # float32 ABCD, input registers
    ("pv", "pv", "huawei_sun2000", "energy_export_kwh", 98765.43),  # uint32 ABCD, scale 0.01
    ("wind", "wind", "wind_turbine_cdab", "active_power_kw", 812.25),  # float32 CDAB
    ("ess", "storage", "storage_pcs", "active_power_kw", -250.5),  # negative int32, scale 0.01
    ("gas", "gas_meter", "gas_flowmeter_f64", "gas_volume_m3", 123456.789012),  # float64
    ("steam", "steam_meter", "steam_flowmeter", "steam_t", 512.75),  # float32, input registers
    ("water", "water_meter", "water_meter_badc", "water_m3", 2345.67),  # uint32 BADC, scale 0.01
    ("gd", "gas_detector", "gas_detector", "lel_pct", 12.3),  # uint16 scale 0.1
    ("env", "env_sensor", "env_station", "temperature_c", -12.5),  # negative int16 scale 0.1
    ("fire", "fire_panel", "fire_panel", "smoke_alarm", 1.0),  # discrete input bit
]


def _registry(uid: str):  # type: ignore[no-untyped-def]
    devices = []
    for suffix, role, template, _, _ in CASES:
        dev = {"id": f"{suffix}{uid}", "role": role, "template": template, "poll_interval_s": 1.0, "rated_kw": 500}
        if role == "load_meter":
            dev["parent"] = f"grid{uid}"
        devices.append(dev)
    return make_registry(uid, devices, enterprises=2)


async def _wait_for(check, timeout_s: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last is not None:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout_s} s (last: {last})")


@pytest.mark.integration
async def test_register_values_reach_influx_and_api_and_kpis_appear(
        broker: RunningService, influx_url: str, influx_db: str, uid: str, tmp_path: Path) -> None:
    registry = _registry(uid)
    park_id = registry.parks[0].id
    settings = load_settings(
        mqtt={"host": broker.host, "port": broker.port},
        influx={"url": influx_url, "database": influx_db},
        ingest={"group": f"ingest{uid}", "client_id": f"ingest-{uid}"},
        analytics={"group": f"analytics{uid}", "client_id": f"analytics-{uid}", "publish_interval_s": 1.0},
        var_dir=tmp_path / "var",
    )
    async with LocalStack(settings, registry, tmp_path / "edge") as stack, httpx.AsyncClient(
            base_url=stack.api_url, headers=stack.api_headers, timeout=5.0) as api:
        assert stack.park is not None
        started = time.monotonic()
        for suffix, _, _, point, value in CASES:
            stack.park.set_point(f"{suffix}{uid}", point, value)

        for suffix, _, _, point, value in CASES:
            device = f"{suffix}{uid}"

            async def latest_value(device: str = device, point: str = point, value: float = value) -> float | None:
                r = await api.get(f"/api/v1/devices/{device}/latest")
                if r.status_code != 200:
                    return None
                got = r.json()["fields"].get(point)
                return got["value"] if got and got["value"] == pytest.approx(value, rel=1e-6) else None

            got = await _wait_for(latest_value)
            assert got == pytest.approx(value, rel=1e-6), (device, point)

            # The same value is in InfluxDB with the contract's tags.
            q = (f'SELECT last("{point}") FROM telemetry WHERE device=\'{device}\' AND park=\'{park_id}\' '
                 f"AND enterprise='e{uid}-0'")
            r = await api.get(f"{influx_url}/query", params={"db": influx_db, "q": q})
            series = r.json()["results"][0]["series"][0]
            assert series["values"][0][1] == pytest.approx(value, rel=1e-6)
        elapsed = time.monotonic() - started
        print(f"\nall {len(CASES)} register values visible through the API after {elapsed:.2f} s")

        async def park_kpi() -> dict | None:  # type: ignore[type-arg]
            r = await api.get(f"/api/v1/parks/{park_id}/kpi")
            body = r.json() if r.status_code == 200 else {}
            kpi = body.get("kpi") or {}
            # Live (from the MQTT KPI stream), not the InfluxDB fallback the API serves until a frame arrived.
            return body if kpi.get("devices_reporting") == len(CASES) and body.get("source") == "live" else None

        body = await _wait_for(park_kpi)
        assert body["source"] == "live"
        kpi = body["kpi"]
        # The pinned grid meter imports 1234.567 kW; PV/wind/storage/green come from their own meters.
        assert kpi["grid_import_kw"] == pytest.approx(1234.567, rel=1e-6)
        assert kpi["wind_kw"] == pytest.approx(812.25)
        assert kpi["storage_kw"] == pytest.approx(-250.5)
        assert kpi["load_kw"] == pytest.approx(kpi["grid_import_kw"] - kpi["grid_export_kw"] + kpi["green_supply_kw"]
                                               + kpi["generation_kw"] + kpi["storage_kw"])

        # Every park and every enterprise gets KPIs, also the enterprise without devices.
        r = await api.get("/api/v1/kpi")
        assert [(k["park"], k["source"]) for k in r.json()] == [(park_id, "live")]
        for ent in registry.parks[0].enterprises:
            r = await api.get(f"/api/v1/enterprises/{ent.id}/kpi")
            assert r.json()["source"] == "live", ent.id
            assert r.json()["kpi"]["devices_total"] == (len(CASES) if ent.id.endswith("-0") else 0)
