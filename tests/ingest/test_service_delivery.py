"""Delivery guarantees: ack after write, redelivery after a crash, backpressure, shared work, 4xx bisection."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from deploy.services import RunningService, mosquitto
from ingest import IngestService
from parkmodel.codec import telemetry_payload
from parkmodel.registry import Registry
from smartpark.influx_schema import ensure_schema
from tests.ingest.helpers import (
    TEST_SESSION_EXPIRY_S,
    DeadLetters,
    count_points,
    eventually,
    make_settings,
    mqtt_client,
    now_ms,
    query,
)
from tests.ingest.proxy import TcpProxy


async def _publish_many(broker: RunningService, topic: str, n: int, t0: int, *, seq0: int = 0) -> None:
    async with mqtt_client(broker) as pub:
        for i in range(0, n, 100):
            await asyncio.gather(*(
                pub.publish(topic, telemetry_payload(seq0 + k, [(t0 + k, {"active_power_kw": float(k)})]), qos=1)
                for k in range(i, min(n, i + 100))))


async def test_killed_worker_loses_nothing_and_duplicates_nothing(
        broker: RunningService, influx: RunningService, influx_url: str, influx_db: str, uid: str,
        small_registry: Registry) -> None:
    """Worker 1's writes reach InfluxDB but their answers never come back, so it acks nothing; it is killed.

    The broker redelivers every message to the next session with the same client id, which writes them
    again: all points are there, each once per series and timestamp.
    """
    n = 60
    topic = f"sp/v1/p{uid}/e{uid}-0/m{uid}/telemetry"
    t0 = now_ms() - 10 * 60_000
    async with TcpProxy(influx.host, influx.port, mode="up") as proxy:
        hidden = make_settings(broker, proxy.url, influx_db, uid, batch_points=1000, batch_interval_s=0.5)
        hidden.influx.timeout_s = 30  # the answer never comes; the worker waits on it, holding its acks
        svc1 = IngestService(hidden, small_registry, session_expiry_s=TEST_SESSION_EXPIRY_S)
        async with svc1:
            await svc1.wait_subscribed()

            async def database_created() -> bool:
                return proxy.requests_seen >= 1
            await eventually(database_created, what="CREATE DATABASE through the proxy")
            await asyncio.sleep(0.2)  # its answer travels back
            await proxy.set_mode("blackhole")
            await _publish_many(broker, topic, n, t0)

            async def received_and_written() -> bool:
                return svc1.stats()["messages"] == n and await count_points(influx_url, influx_db) > 0
            await eventually(received_and_written, what="worker 1 received all and its first write landed")
            assert svc1.stats()["in_flight"] == n and svc1.stats()["points_written"] == 0
            await svc1.abort()  # killed: nothing acknowledged
    assert proxy.requests_seen >= 1

    real = make_settings(broker, influx_url, influx_db, uid)
    async with IngestService(real, small_registry, session_expiry_s=TEST_SESSION_EXPIRY_S) as svc2:
        await svc2.wait_subscribed()

        async def rewritten() -> bool:
            return svc2.stats()["points_written"] == n
        await eventually(rewritten, what="redelivered messages written by worker 2")
        assert svc2.stats()["messages"] == n  # the broker redelivered every one of them
    rows = await query(influx_url, influx_db, 'SELECT count("active_power_kw") FROM "telemetry" GROUP BY "device"')
    assert [(r["device"], r["count"]) for r in rows] == [(f"m{uid}", n)]
    # Acknowledged this time: a third session with the same id gets nothing.
    async with IngestService(real, small_registry, session_expiry_s=TEST_SESSION_EXPIRY_S) as svc3:
        await svc3.wait_subscribed()
        await asyncio.sleep(0.5)
        assert svc3.stats()["messages"] == 0


async def test_backpressure_while_influx_is_down_then_catch_up(
        broker: RunningService, influx: RunningService, influx_url: str, influx_db: str, uid: str,
        small_registry: Registry) -> None:
    n, limit = 200, 10
    topic = f"sp/v1/p{uid}/e{uid}-0/m{uid}/telemetry"
    t0 = now_ms() - 10 * 60_000
    async with TcpProxy(influx.host, influx.port, mode="down") as proxy:
        settings = make_settings(broker, proxy.url, influx_db, uid, max_in_flight=limit, batch_points=5)
        async with IngestService(settings, small_registry, session_expiry_s=TEST_SESSION_EXPIRY_S) as svc:
            await svc.wait_subscribed()
            await _publish_many(broker, topic, n, t0)

            async def retrying() -> bool:
                return svc.stats()["write_retries"] >= 3
            await eventually(retrying, what="write retries")
            await asyncio.sleep(0.3)
            stats = svc.stats()
            # Took exactly as many as it may hold; the broker keeps the rest for us.
            assert stats["messages"] == limit and stats["in_flight"] == limit and stats["points_written"] == 0

            await proxy.set_mode("up")

            async def caught_up() -> bool:
                return await count_points(influx_url, influx_db) == n
            await eventually(caught_up, within=20, what="catch-up after InfluxDB returned")
            await eventually(lambda: _idle(svc), what="all acknowledged")
            stats = svc.stats()
    assert stats["messages"] == n and stats["points_written"] == n and stats["rejected"] == {}


async def _idle(svc: IngestService) -> bool:
    return bool(svc.stats()["in_flight"] == 0)


async def test_two_workers_share_the_stream_and_store_each_point_once(
        broker: RunningService, influx_url: str, influx_db: str, uid: str, small_registry: Registry) -> None:
    n = 400
    t0 = now_ms() - 10 * 60_000
    settings = make_settings(broker, influx_url, influx_db, uid)
    async with (
        IngestService(settings, small_registry, client_id=f"ingest-{uid}-a", session_expiry_s=TEST_SESSION_EXPIRY_S) as a,
        IngestService(settings, small_registry, client_id=f"ingest-{uid}-b", session_expiry_s=TEST_SESSION_EXPIRY_S) as b,
    ):
        await a.wait_subscribed()
        await b.wait_subscribed()
        await asyncio.gather(
            _publish_many(broker, f"sp/v1/p{uid}/e{uid}-0/m{uid}/telemetry", n // 2, t0),
            _publish_many(broker, f"sp/v1/p{uid}/e{uid}-0/pv{uid}/telemetry", n // 2, t0))

        async def all_written() -> bool:
            return a.stats()["points_written"] + b.stats()["points_written"] >= n
        await eventually(all_written, what="all points written by the two workers")
        sa, sb = a.stats(), b.stats()
    assert sa["messages"] > 0 and sb["messages"] > 0  # both did work
    assert sa["messages"] + sb["messages"] == n  # each message went to exactly one of them
    assert sa["points_written"] + sb["points_written"] == n
    rows = await query(influx_url, influx_db, 'SELECT count("active_power_kw") FROM "telemetry" GROUP BY "device"')
    assert sorted((r["device"], r["count"]) for r in rows) == sorted([(f"m{uid}", n // 2), (f"pv{uid}", n // 2)])


async def test_rejected_lines_are_isolated_and_the_rest_of_the_batch_is_stored(
        broker: RunningService, influx_url: str, influx_db: str, uid: str, small_registry: Registry) -> None:
    park, ent, meter = f"p{uid}", f"e{uid}-0", f"m{uid}"
    topic = f"sp/v1/{park}/{ent}/{meter}/telemetry"
    t0 = now_ms() - 60_000
    settings = make_settings(broker, influx_url, influx_db, uid, batch_interval_s=1.0, batch_points=10_000)
    # Someone stored active_power_kw as an integer in this shard (of the default policy ingest sets up): float
    # writes of it now conflict.
    async with httpx.AsyncClient() as http:
        async with httpx.AsyncClient(base_url=influx_url) as influx:
            await ensure_schema(influx, settings.influx)
        r = await http.post(f"{influx_url}/write", params={"db": influx_db, "precision": "ms"},
                            content=f"telemetry,device=x{uid} active_power_kw=1i {t0 - 1}")
        r.raise_for_status()
    n, bad = 16, 11
    async with (
        IngestService(settings, small_registry, session_expiry_s=TEST_SESSION_EXPIRY_S) as svc,
        mqtt_client(broker) as listener,
        DeadLetters(listener, uid) as dead,
        mqtt_client(broker) as pub,
    ):
        await svc.wait_subscribed()
        for k in range(n):
            fields = {"voltage_v": 230.0 + k}
            if k == bad:
                fields["active_power_kw"] = 5.0
            await pub.publish(topic, telemetry_payload(k, [(t0 + k, fields)]), qos=1)

        async def settled() -> bool:
            return len(dead.items) == 1 and svc.stats()["points_written"] == n - 1
        await eventually(settled, what="one dead letter and the other messages written")
        await eventually(lambda: _idle(svc), what="all acknowledged")
        stats = svc.stats()
    letter = dead.items[0]
    assert letter["reason"] == "schema" and "field type conflict" in letter["error"]
    assert '"seq":11' in letter["payload"]
    assert stats["batches_written"] > 1  # the batch was bisected
    rows = await query(influx_url, influx_db, f"SELECT count(\"voltage_v\") FROM \"telemetry\" WHERE device='{meter}'")
    assert rows[0]["count"] >= n - 1


async def test_reconnects_after_the_broker_restarts(
        tmp_path: Path, influx_url: str, influx_db: str, uid: str, small_registry: Registry) -> None:
    t0 = now_ms() - 60_000
    topic = f"sp/v1/p{uid}/e{uid}-0/m{uid}/telemetry"
    with mosquitto(tmp_path / "broker") as own:
        settings = make_settings(own, influx_url, influx_db, uid)
        async with IngestService(settings, small_registry, session_expiry_s=TEST_SESSION_EXPIRY_S) as svc:
            await svc.wait_subscribed()
            await _publish_many(own, topic, 20, t0)
            await eventually(lambda: _points(svc, 20), what="first 20 points")
            own.stop()  # broker goes away (persisting our session) ...
            with mosquitto(tmp_path / "broker", port=own.port) as again:  # ... and comes back on the same port

                async def resubscribed() -> bool:
                    return bool(svc.stats()["mqtt_sessions"] >= 2)
                await eventually(resubscribed, what="a new session after the broker came back")
                await _publish_many(again, topic, 20, t0 + 1000)
                await eventually(lambda: _points(svc, 40), within=20, what="points after the reconnect")
                stats = svc.stats()
    assert stats["mqtt_connections_lost"] >= 1
    assert await count_points(influx_url, influx_db) == 40


async def _points(svc: IngestService, n: int) -> bool:
    return bool(svc.stats()["points_written"] >= n)
