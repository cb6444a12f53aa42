"""The engine keeps running when a delivery or a message hits an error: a locked store, a missing secret."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from analytics.alerts.engine import AlertEngine
from analytics.alerts.store import AlertFilter
from analytics.alerts.subscribers import Subscriber
from parkmodel.codec import telemetry_payload
from parkmodel.topics import telemetry_topic
from tests.alerts.conftest import SECRET, fast, safety_registry, settings_for, subscriber
from tests.alerts.receiver import WebhookReceiver


@dataclass
class GatedReceiver(WebhookReceiver):
    """Holds each request until `gate` is set, so a test can act while a delivery is in flight."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connected.set()
        await self.gate.wait()
        await super()._handle(reader, writer)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Another connection holds the database's write lock (as a second engine or the API might)."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        yield
        other.execute("ROLLBACK")
    finally:
        other.close()


async def fail_fast_when_locked(eng: AlertEngine) -> None:
    assert eng.store is not None
    await eng._call(eng.store._db.execute, "PRAGMA busy_timeout=0")  # "database is locked" at once, not in 30 s


def alive(eng: AlertEngine) -> bool:
    return all(not t.done() for t in eng._loops)


async def test_store_locked_during_a_delivery_keeps_the_engine_and_retries(tmp_path: Path, uid: str) -> None:
    reg = safety_registry(uid)
    async with GatedReceiver(SECRET) as rx, AlertEngine(
        settings_for(tmp_path), reg, options=fast(), subscribers=[subscriber("em", rx.url, categories=["safety"])],
    ) as eng:
        await fail_fast_when_locked(eng)
        await eng.observe(f"gd{uid}", eng.clock(), {"lel_pct": 30})
        async with asyncio.timeout(10):
            await rx.connected.wait()  # the POST is in flight
        with locked(eng.store_path):
            rx.gate.set()  # answered: recording the attempt now fails with "database is locked"
            await rx.wait_for(lambda r: True)
            await asyncio.sleep(0.5)
            assert alive(eng)
        # The outbox still holds the row: it is sent again (same delivery id) and then recorded.
        got = await rx.wait_for(lambda r: True, n=2)
        assert got[0].delivery_id == got[1].delivery_id
        assert eng.store is not None
        async with asyncio.timeout(10):
            while not [d for a in eng.store.list()[0] for d in eng.store.deliveries(a["id"])  # noqa: ASYNC110
                       if d["state"] == "delivered"]:
                await asyncio.sleep(0.05)
        assert alive(eng)


async def test_missing_subscriber_secret_is_a_failed_attempt_not_a_crash(tmp_path: Path, uid: str) -> None:
    reg = safety_registry(uid)
    env = f"SP_TEST_SECRET_{uid.upper()}"
    no_secret = Subscriber(id="nosecret", url="http://127.0.0.1:9/hook", secret_env=env)
    async with WebhookReceiver(SECRET) as rx, AlertEngine(
        settings_for(tmp_path), reg, options=fast(), subscribers=[no_secret, subscriber("em", rx.url)],
    ) as eng:
        await eng.observe(f"gd{uid}", eng.clock(), {"lel_pct": 30})
        await rx.wait_for(lambda r: r.json["event"] == "raised")
        assert eng.store is not None
        async with asyncio.timeout(10):
            while True:
                attempts = [x for a in eng.store.list()[0] for d in eng.store.deliveries(a["id"])
                            if d["target"] == "webhook:nosecret" for x in d["attempts"]]
                if attempts:
                    break
                await asyncio.sleep(0.05)
        assert not attempts[0]["ok"] and env in attempts[0]["error"]
        await eng.observe(f"gd{uid}", eng.clock() + 1000, {"lel_pct": 60})  # and later events still go out
        await rx.wait_for(lambda r: r.json["alert"]["level"] == 2)
        assert alive(eng)


async def test_store_error_while_receiving_skips_the_message_not_the_worker(tmp_path: Path, uid: str) -> None:
    reg = safety_registry(uid)
    topic = telemetry_topic(f"p{uid}", f"e{uid}-0", f"gd{uid}")
    async with AlertEngine(settings_for(tmp_path), reg, options=fast()) as eng:
        await fail_fast_when_locked(eng)
        t = eng.clock()
        with locked(eng.store_path):
            await eng.receive(topic, telemetry_payload(1, [(t, {"lel_pct": 30.0})]))  # logged, not raised
        await eng.receive(topic, telemetry_payload(2, [(t + 1000, {"lel_pct": 31.0})]))
        assert eng.store is not None
        items, _ = eng.store.list(AlertFilter(categories=("safety",)))
        assert [(a["rule"], a["state"]) for a in items] == [("gas_lel", "raised")]
        assert alive(eng)
