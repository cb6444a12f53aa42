"""Telemetry, events and status published for registered devices end up in InfluxDB, idempotently."""

from __future__ import annotations

import orjson

from deploy.services import RunningService
from ingest import IngestService
from parkmodel.codec import encode
from parkmodel.registry import Registry
from tests.ingest.helpers import (
    TEST_SESSION_EXPIRY_S,
    count_points,
    eventually,
    make_settings,
    mqtt_client,
    now_ms,
    publish_telemetry,
    query,
)


async def test_telemetry_is_stored_with_tags_fields_and_timestamps(
        broker: RunningService, influx_url: str, influx_db: str, uid: str, small_registry: Registry) -> None:
    settings = make_settings(broker, influx_url, influx_db, uid)
    park, ent, meter, pv = f"p{uid}", f"e{uid}-0", f"m{uid}", f"pv{uid}"
    t0 = now_ms() - 60_000
    async with IngestService(settings, small_registry, session_expiry_s=TEST_SESSION_EXPIRY_S) as svc:
        await svc.wait_subscribed()
        async with mqtt_client(broker) as pub:
            await publish_telemetry(pub, f"sp/v1/{park}/{ent}/{meter}/telemetry", 1, [
                (t0, {"active_power_kw": 12.5, "energy_import_kwh": 1000.25}),
                (t0 + 2000, {"active_power_kw": 13, "energy_import_kwh": 1000.5}),
            ])
            await publish_telemetry(pub, f"sp/v1/{park}/{ent}/{pv}/telemetry", 7, [(t0, {"active_power_kw": -0.5})])

            async def all_there() -> bool:
                return await count_points(influx_url, influx_db) == 3
            await eventually(all_there, what="3 points in InfluxDB")

            rows = await query(influx_url, influx_db, 'SELECT * FROM "telemetry" GROUP BY * ORDER BY time')
            by_key = {(r["device"], r["time"]): r for r in rows}
            m0 = by_key[(meter, t0)]
            assert (m0["park"], m0["enterprise"], m0["role"]) == (park, ent, "grid_meter")
            assert m0["active_power_kw"] == 12.5 and m0["energy_import_kwh"] == 1000.25
            assert by_key[(meter, t0 + 2000)]["active_power_kw"] == 13.0
            assert by_key[(pv, t0)]["role"] == "pv" and by_key[(pv, t0)]["active_power_kw"] == -0.5
            # the field type is float even when JSON carried an integer (13): no type conflict later
            types = await query(influx_url, influx_db, 'SHOW FIELD KEYS FROM "telemetry"')
            assert {r["fieldKey"]: r["fieldType"] for r in types}["active_power_kw"] == "float"

            # Redelivery / republish of the same points overwrites: still 3 points, values of the last write.
            await publish_telemetry(pub, f"sp/v1/{park}/{ent}/{meter}/telemetry", 1, [
                (t0, {"active_power_kw": 12.5, "energy_import_kwh": 1000.25}),
                (t0 + 2000, {"active_power_kw": 13, "energy_import_kwh": 1000.5}),
            ])
            await eventually(lambda: _written(svc, 5), what="the republished points written")
            assert await count_points(influx_url, influx_db) == 3
        stats = svc.stats()
    assert stats["messages"] == 3 and stats["points_written"] == 5 and stats["rejected"] == {}
    assert stats["batch_latency_seconds_count"] >= 1


async def _written(svc: IngestService, points: int) -> bool:
    return bool(svc.stats()["points_written"] >= points)


async def test_events_and_gateway_status_are_stored(
        broker: RunningService, influx_url: str, influx_db: str, uid: str, small_registry: Registry) -> None:
    settings = make_settings(broker, influx_url, influx_db, uid)
    park, ent, gw, meter, pv = f"p{uid}", f"e{uid}-0", f"g{uid}-0", f"m{uid}", f"pv{uid}"
    ts = now_ms() - 1000
    async with IngestService(settings, small_registry, session_expiry_s=TEST_SESSION_EXPIRY_S) as svc:
        await svc.wait_subscribed()
        async with mqtt_client(broker) as pub:
            event = {"v": 1, "seq": 4, "ts": ts, "type": "smoke_alarm", "state": 1, "input": 3,
                     "detail": 'zone "B", line 2'}
            await pub.publish(f"sp/v1/{park}/{ent}/{meter}/event", orjson.dumps(event), qos=1)
            status = {"v": 1, "state": "online", "ts": ts, "devices": {
                meter: {"online": True, "last_ok_ts": ts}, pv: {"online": False, "error": "timeout"}}}
            await pub.publish(f"sp/v1/{park}/{ent}/{gw}/status", encode(status), qos=1)
            # the last will: offline, no devices, ts 0 -> every device of the gateway offline, stamped on arrival
            await pub.publish(f"sp/v1/{park}/{ent}/{gw}/status",
                              encode({"v": 1, "state": "offline", "ts": 0, "devices": {}}), qos=1)
            await eventually(lambda: _written(svc, 5), what="event and status points")
    events = await query(influx_url, influx_db, 'SELECT * FROM "event" GROUP BY *')
    assert len(events) == 1
    e = events[0]
    assert (e["time"], e["device"], e["type"], e["role"], e["park"], e["enterprise"]) == (
        ts, meter, "smoke_alarm", "grid_meter", park, ent)
    assert (e["state"], e["input"], e["seq"], e["detail"]) == (1, 3, 4, 'zone "B", line 2')
    statuses = await query(influx_url, influx_db, 'SELECT * FROM "device_status" GROUP BY * ORDER BY time')
    assert len(statuses) == 4
    first = {r["device"]: r for r in statuses if r["time"] == ts}
    assert first[meter]["online"] == 1 and first[meter]["error"] == ""
    assert first[pv]["online"] == 0 and first[pv]["error"] == "timeout"
    assert {r["gateway"] for r in statuses} == {gw}
    offline = [r for r in statuses if r["time"] != ts]
    assert {r["device"] for r in offline} == {meter, pv}
    assert all(r["online"] == 0 and r["error"] == "gateway offline" and r["time"] > ts for r in offline)
