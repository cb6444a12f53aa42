"""Every kind of bad message goes to the dead letter with its reason while good messages keep flowing."""

from __future__ import annotations

import base64

import orjson

from deploy.services import RunningService
from ingest import IngestService
from parkmodel.codec import telemetry_payload
from tests.conftest import make_registry
from tests.ingest.helpers import (
    TEST_SESSION_EXPIRY_S,
    DeadLetters,
    count_points,
    eventually,
    make_settings,
    mqtt_client,
    now_ms,
)


async def test_bad_messages_are_dead_lettered_with_their_reason(
        broker: RunningService, influx_url: str, influx_db: str, uid: str) -> None:
    registry = make_registry(uid, enterprises=2)
    settings = make_settings(broker, influx_url, influx_db, uid)
    park, ent, other_ent, meter = f"p{uid}", f"e{uid}-0", f"e{uid}-1", f"m{uid}"
    good_topic = f"sp/v1/{park}/{ent}/{meter}/telemetry"
    t = now_ms() - 5000

    def point(fields: str, ts: int = t) -> bytes:
        return f'{{"v":1,"seq":1,"points":[{{"ts":{ts},"fields":{{{fields}}}}}]}}'.encode()

    bad: dict[str, tuple[bytes, str]] = {  # topic -> (payload, expected reason)
        f"sp/v1/{park}/{ent}/{meter}x1/telemetry": (b'{"v":1,"seq":', "unknown_device"),  # unknown first
        f"sp/v1/{park}/{ent}/{meter}x2/telemetry": (point('"active_power_kw":1'), "unknown_device"),
        f"sp/v1/{park}/{other_ent}/{meter}/telemetry": (point('"active_power_kw":1'), "topic"),
        f"sp/v1/{park}/e{uid}-9/{meter}/telemetry": (point('"active_power_kw":1'), "topic"),
        f"sp/v1/{park}/Bad{uid}/{meter}/telemetry": (point('"active_power_kw":1'), "topic"),
    }
    # Payload faults, each on its own (registered) topic kind so the dead letter is told apart by payload.
    payload_faults: list[tuple[bytes, str]] = [
        (b'{"v":1,"seq":1,"points":[', "not_json"),
        (b"\xff\xfe not utf-8", "not_json"),
        (point('"active_power_kw":1').replace(b'"v":1', b'"v":2'), "version"),
        (point('"active_power_kwh":1'), "unknown_field"),
        (point('"active_power_kw":NaN'), "not_json"),  # NaN is not JSON; msgspec refuses it as such
        (point('"active_power_kw":1e999'), "schema"),  # overflows a float
        (point('"voltage_v":-5'), "out_of_range"),
        (point('"active_power_kw":1', ts=now_ms() + 3600_000), "timestamp"),
        (point('"active_power_kw":1', ts=1000), "timestamp"),
        (b'{"v":1,"seq":1,"points":[]}', "empty"),
        (b'{"v":1,"seq":1,"points":[{"ts":1,"fields":{}}],"extra":1}', "schema"),
    ]
    async with (
        IngestService(settings, registry, session_expiry_s=TEST_SESSION_EXPIRY_S) as svc,
        mqtt_client(broker) as listener,
        DeadLetters(listener, uid) as dead,
        mqtt_client(broker) as pub,
    ):
        await svc.wait_subscribed()
        ts_good = t
        for n, (payload, _) in enumerate(payload_faults):
            await pub.publish(good_topic, telemetry_payload(n, [(ts_good + n, {"active_power_kw": float(n)})]), qos=1)
            await pub.publish(good_topic, payload, qos=1)
        for topic, (payload, _) in bad.items():
            await pub.publish(topic, payload, qos=1)
        await pub.publish(good_topic, telemetry_payload(99, [(ts_good + 99, {"active_power_kw": 99.0})]), qos=1)

        expected = len(bad) + len(payload_faults)

        async def all_dead() -> bool:
            return len(dead.items) >= expected
        await eventually(all_dead, what=f"{expected} dead letters")

        async def good_stored() -> bool:
            return await count_points(influx_url, influx_db) == len(payload_faults) + 1
        await eventually(good_stored, what="every good message stored")

        reasons = dead.reasons()
        for topic, (_, reason) in bad.items():
            assert reasons[topic] == reason, topic
        from_good_topic = [d for d in dead.items if d["topic"] == good_topic]
        assert [d["reason"] for d in from_good_topic] == [r for _, r in payload_faults]
        for d, (payload, _) in zip(from_good_topic, payload_faults, strict=True):
            assert d["v"] == 1 and d["error"] and abs(d["ts"] - now_ms()) < 60_000
            try:
                assert d["payload"] == payload.decode()
            except UnicodeDecodeError:
                assert d["payload"] == "base64:" + base64.b64encode(payload).decode()
        stats = svc.stats()
    assert sum(stats["rejected"].values()) == expected
    assert stats["rejected"]["unknown_device"] == 2 and stats["rejected"]["topic"] == 3
    assert stats["rejected"]["not_json"] == 3
    assert stats["messages"] == expected + len(payload_faults) + 1


async def test_bad_events_and_status_are_dead_lettered(
        broker: RunningService, influx_url: str, influx_db: str, uid: str) -> None:
    registry = make_registry(uid)
    settings = make_settings(broker, influx_url, influx_db, uid)
    park, ent, gw, meter = f"p{uid}", f"e{uid}-0", f"g{uid}-0", f"m{uid}"
    cases = [
        (f"sp/v1/{park}/{ent}/{meter}/event", {"v": 1, "seq": 1, "ts": now_ms(), "type": "Smoke Alarm"}, "schema"),
        (f"sp/v1/{park}/{ent}/{meter}/event", {"v": 1, "seq": 1, "ts": 5, "type": "smoke_alarm"}, "timestamp"),
        (f"sp/v1/{park}/{ent}/{gw}/status", {"v": 1, "state": "maybe"}, "schema"),
        (f"sp/v1/{park}/{ent}/{gw}/status",
         {"v": 1, "state": "online", "ts": now_ms(), "devices": {f"x{uid}": {"online": True}}}, "unknown_device"),
        (f"sp/v1/{park}/{ent}/g{uid}-7/status", {"v": 1, "state": "online"}, "unknown_device"),
    ]
    async with (
        IngestService(settings, registry, session_expiry_s=TEST_SESSION_EXPIRY_S) as svc,
        mqtt_client(broker) as listener,
        DeadLetters(listener, uid) as dead,
        mqtt_client(broker) as pub,
    ):
        await svc.wait_subscribed()
        for topic, body, _ in cases:
            await pub.publish(topic, orjson.dumps(body), qos=1)

        async def all_dead() -> bool:
            return len(dead.items) >= len(cases)
        await eventually(all_dead, what="dead letters")
    assert [d["reason"] for d in dead.items] == [r for _, _, r in cases]
    assert [d["topic"] for d in dead.items] == [t for t, _, _ in cases]
