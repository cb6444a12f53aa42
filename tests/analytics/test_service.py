"""The live KPI service against the real Mosquitto and influxd."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiomqtt
import httpx
import pytest

from analytics.service import AnalyticsService
from analytics.state import day_start_ms
from deploy.services import RunningService
from parkmodel.codec import telemetry_payload
from parkmodel.topics import kpi_topic, telemetry_topic
from smartpark.config import AnalyticsSettings, InfluxSettings, MqttSettings, Settings
from tests.conftest import make_registry

pytestmark = pytest.mark.integration


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def make_settings(broker: RunningService, influx_url: str, influx_db: str, uid: str, var_dir: Path) -> Settings:
    return Settings(
        var_dir=var_dir,
        mqtt=MqttSettings(host=broker.host, port=broker.port),
        influx=InfluxSettings(url=influx_url, database=influx_db),
        analytics=AnalyticsSettings(group=f"a{uid}", client_id=f"analytics-{uid}", publish_interval_s=0.5),
    )


async def test_kpis_published_and_stored_and_restart_keeps_todays_energy(
    broker: RunningService, influx_url: str, influx_db: str, uid: str, tmp_path: Path
) -> None:
    registry = make_registry(uid, enterprises=2)
    park, ent, meter, pv = f"p{uid}", f"e{uid}-0", f"m{uid}", f"pv{uid}"
    # What ingest stored before the restart: the grid meter imported 12 kWh today.
    start = now_ms()
    t_a, t_b = max(day_start_ms(start) + 1, start - 600_000), start - 300_000
    lines = [f"telemetry,device={meter},enterprise={ent},park={park},role=grid_meter energy_import_kwh={v} {t}"
             for v, t in ((1000.0, t_a), (1012.0, t_b))]
    async with httpx.AsyncClient(base_url=influx_url) as http:
        r = await http.post("/write", params={"db": influx_db, "precision": "ms"}, content="\n".join(lines))
        r.raise_for_status()

    settings = make_settings(broker, influx_url, influx_db, uid, tmp_path)
    async with (
        AnalyticsService(settings, registry) as svc,
        aiomqtt.Client(broker.host, broker.port, identifier=f"t-{uid}") as client,
    ):
        async with asyncio.timeout(10):
            await svc.wait_subscribed()
        await client.subscribe(kpi_topic(park), qos=0)
        t = now_ms()
        await client.publish(telemetry_topic(park, ent, meter), telemetry_payload(1, [
            (t, {"energy_import_kwh": 1015.0, "active_power_kw": 50.0}),
            (t + 1000, {"energy_import_kwh": 1020.0, "active_power_kw": 50.0}),
        ]), qos=1)
        await client.publish(telemetry_topic(park, ent, pv), telemetry_payload(1, [
            (t, {"energy_export_kwh": 100.0, "active_power_kw": 30.0}),
            (t + 1000, {"energy_export_kwh": 104.0, "active_power_kw": 30.0}),
        ]), qos=1)
        await client.publish(telemetry_topic(park, ent, pv), b"{not json", qos=1)
        await client.publish(telemetry_topic(park, ent, f"ghost{uid}"), telemetry_payload(1, [(t, {"water_m3": 1})]))

        expected = {
            "grid_import_today_kwh": 20.0,  # 12 caught up + 8 live
            "generation_today_kwh": 4.0,
            "consumed_today_kwh": 24.0,
            "renewable_consumed_today_kwh": 4.0,
            "load_kw": 80.0,
            "devices_reporting": 2.0,
            "devices_total": 2.0,
        }
        received = None
        async with asyncio.timeout(5):
            async for message in client.messages:
                msg = json.loads(message.payload)
                if all(msg["kpi"][k] == pytest.approx(v) for k, v in expected.items()):
                    received = msg
                    break
        assert received is not None
        assert received["v"] == 1 and received["park"] == park
        assert received["kpi"]["new_energy_ratio_today"] == pytest.approx(4 / 24)
        assert received["enterprises"][ent]["grid_import_today_kwh"] == pytest.approx(20.0)
        assert received["enterprises"][f"e{uid}-1"]["new_energy_ratio_today"] is None
        assert (svc.stats["not_json"], svc.stats["unknown_device"], svc.stats["ok"]) == (1, 1, 2)
        assert svc.snapshot()[park]["kpi"]["devices_total"] == 2.0

    query = f"SELECT last(grid_import_today_kwh) FROM kpi WHERE park='{park}' GROUP BY scope, enterprise"
    async with httpx.AsyncClient(base_url=influx_url) as http:
        r = await http.get("/query", params={"db": influx_db, "q": query})
    series = {(s["tags"]["scope"], s["tags"]["enterprise"]): s["values"][0][1]
              for s in r.json()["results"][0]["series"]}
    assert series[("park", "")] == pytest.approx(20.0)
    assert series[("enterprise", ent)] == pytest.approx(20.0)
    assert series[("enterprise", f"e{uid}-1")] == 0.0


async def test_restart_restores_the_checkpoint_and_catches_up_from_influx(
    broker: RunningService, influx_url: str, influx_db: str, uid: str, tmp_path: Path
) -> None:
    registry = make_registry(uid)
    park, ent, meter = f"p{uid}", f"e{uid}-0", f"m{uid}"
    settings = make_settings(broker, influx_url, influx_db, uid, tmp_path)
    t = now_ms()
    async with AnalyticsService(settings, registry) as svc:
        svc.receive(telemetry_topic(park, ent, meter), telemetry_payload(1, [
            (t - 3000, {"energy_import_kwh": 100.0}), (t - 2000, {"energy_import_kwh": 107.0})]))
        assert svc.fold() == 2
        assert svc.compute()[park]["kpi"]["grid_import_today_kwh"] == pytest.approx(7.0)
    assert svc.checkpoint.exists() and svc.checkpoint.parent == tmp_path  # written on the way out
    # While the service was down, ingest stored two more readings (+5 kWh); the restart continues from both.
    lines = [f"telemetry,device={meter},enterprise={ent},park={park},role=grid_meter energy_import_kwh={v} {ts}"
             for v, ts in ((109.0, t - 1000), (112.0, t))]
    async with httpx.AsyncClient(base_url=influx_url) as http:
        (await http.post("/write", params={"db": influx_db, "precision": "ms"}, content="\n".join(lines))
         ).raise_for_status()
    async with AnalyticsService(settings, registry) as svc:
        kpi = svc.compute()[park]["kpi"]
        assert kpi["grid_import_today_kwh"] == pytest.approx(12.0)
        assert kpi["contracted_capacity_kw"] == 1000.0
    # A checkpoint of another registry is ignored with a warning, not trusted.
    other = make_registry(uid + "x")
    async with AnalyticsService(make_settings(broker, influx_url, influx_db, uid, tmp_path), other,
                                checkpoint=svc.checkpoint) as svc2:
        assert svc2.compute()[f"p{uid}x"]["kpi"]["grid_import_today_kwh"] == 0.0
