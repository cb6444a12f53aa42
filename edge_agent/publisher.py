"""The MQTT side of the agent: one persistent session that drains the store-and-forward queue.

Connection handling follows aiomqtt's own idiom: an async context manager whose background work runs
in named tasks, reconnecting with jittered exponential backoff. Every message is QoS 1 and its rows are
deleted from the store only once `await client.publish(..., qos=1)` returned, which aiomqtt does when
paho calls `on_publish`; for QoS > 0 paho calls it only from `_handle_pubackcomp`, i.e. on PUBACK
(paho/mqtt/client.py; QoS 0 messages are the ones "published" on socket write).

While connected, the rows that arrive are sent at once ("live"), and the rows queued before the
connection came up ("backlog") are drained oldest first at `drain_rate_per_s`, several readings of one
device batched into one payload, so a long outage neither floods the broker nor delays live data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.backoff import Backoff
from edge_agent.config import GatewayConfig
from edge_agent.metrics import PUBLISHED, STORE_DEPTH
from edge_agent.puback import NotDelivered, PubackTracker
from edge_agent.store import Kind, ReadingStore, StoredItem
from parkmodel.codec import CONTRACT_VERSION, Event, GatewayStatus, encode, telemetry_payload
from parkmodel.topics import event_topic, status_topic, telemetry_topic
from smartpark.aio import raise_if_cancelling
from smartpark.mqtt import tls_context

log = logging.getLogger(__name__)

#: The last will, retained: what subscribers see once the broker notices the gateway is gone.
OFFLINE_WILL = GatewayStatus(v=CONTRACT_VERSION, state="offline", ts=0, devices={})
_LIVE_FETCH = 500


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    topic: str
    payload: bytes
    row_ids: tuple[int, ...]
    seq_key: tuple[str, Kind]
    seq: int


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real exception of a (possibly nested) group from task groups."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


class _TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens = rate, burst, burst
        self._at = time.monotonic()

    def available(self) -> int:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self._at) * self.rate)
        self._at = now
        return int(self.tokens)

    def take(self, n: int) -> None:
        self.tokens -= n


class MqttPublisher:
    """Publishes what the store holds, and the gateway status.

    Args:
        config: the gateway config (ids, MQTT, store limits).
        store: the store-and-forward queue.
        status: builds the current gateway status (online, per-device reachability).
    """

    def __init__(self, config: GatewayConfig, store: ReadingStore, status: Callable[[], GatewayStatus]) -> None:
        self.config = config
        self.store = store
        self._status = status
        self._status_topic = status_topic(config.park, config.enterprise, config.gateway)
        self._seq = store.load_seqs()
        self._wake = asyncio.Event()
        self._status_due = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._pubacks: PubackTracker | None = None
        self._undelivered_backoff = Backoff(base=config.mqtt.reconnect_min_s, cap=config.mqtt.reconnect_max_s)
        self._task: asyncio.Task[None] | None = None
        self._closing = False  # set before the cancel: the connection loop also stops if a library ate it
        self.connected = asyncio.Event()
        self.messages_published = 0

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._connection_loop(), name=f"mqtt-connection-{self.config.gateway}")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        client = self._client
        if client is not None and self.connected.is_set():
            # A clean stop sends DISCONNECT, so the broker keeps the will: say offline ourselves.
            offline = GatewayStatus(v=CONTRACT_VERSION, state="offline", ts=time.time_ns() // 1_000_000, devices={})
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await client.publish(self._status_topic, encode(offline), qos=1, retain=True, timeout=2.0)
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake(self) -> None:
        """New rows are in the store."""
        self._wake.set()

    def status_changed(self) -> None:
        """Publish the gateway status soon (a device went online or offline)."""
        self._status_due.set()

    def _make_client(self) -> aiomqtt.Client:
        m = self.config.mqtt
        will = aiomqtt.Will(self._status_topic, encode(OFFLINE_WILL), qos=1, retain=True)
        kwargs: dict[str, object] = {}
        if m.protocol == "5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = m.session_expiry_s
            kwargs.update(protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props)
        else:
            kwargs.update(protocol=aiomqtt.ProtocolVersion.V311, clean_session=False)
        client = aiomqtt.Client(
            m.host, m.port, identifier=m.client_id, username=m.username,
            password=m.password.get_secret_value() if m.password else None, will=will,
            keepalive=m.keepalive_s, timeout=m.publish_timeout_s,
            tls_context=tls_context(str(m.tls_ca_file)) if m.tls_ca_file is not None else None,
            **kwargs,  # type: ignore[arg-type]
        )
        # Hundreds of publishes awaiting PUBACK are normal here (one per device per drain); aiomqtt's default
        # of 10 logged a warning on every one of them, a visible share of the agent's CPU at 1,000 devices.
        client.pending_calls_threshold = 100_000
        return client

    async def _connection_loop(self) -> None:
        m = self.config.mqtt
        backoff = Backoff(base=m.reconnect_min_s, cap=m.reconnect_max_s)
        while True:
            undelivered = False
            try:
                client = self._make_client()
                self._pubacks = PubackTracker(client)
                async with client:
                    self._client = client
                    backoff.reset()
                    log.info("mqtt connected", extra={"gateway": self.config.gateway})
                    await self._session(client)
            except* NotDelivered as group:
                # Nothing subscribed (e.g. ingest not yet back after a broker restart) or refused: the rows stay
                # queued and are sent again from the next session, after a backoff that keeps growing until a
                # publish is delivered again.
                undelivered = True
                first = _first_leaf(group)
                level = logging.ERROR if isinstance(first, NotDelivered) and first.reason.is_failure else logging.WARNING
                log.log(level, "%s; keeping the readings queued", first, extra={"gateway": self.config.gateway})
            except* (aiomqtt.MqttError, OSError) as group:
                log.warning("mqtt connection lost: %s", _first_leaf(group), extra={"gateway": self.config.gateway})
            finally:
                self._client = None
                self.connected.clear()
            # Not `raise_if_cancelling()`: on Python 3.11 a task group that failed (as `_session`'s does) leaves
            # this task's cancellation count raised although nothing cancelled it.
            if self._closing:
                return
            delay = self._undelivered_backoff.next_delay() if undelivered else backoff.next_delay()
            await asyncio.sleep(delay)

    async def _session(self, client: aiomqtt.Client) -> None:
        await client.publish(self._status_topic, encode(self._status()), qos=1, retain=True)
        self.connected.set()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watch(client), name="mqtt-watch")
            tg.create_task(self._drain(client), name="mqtt-drain")
            tg.create_task(self._publish_status(client), name="mqtt-status")

    @staticmethod
    async def _watch(client: aiomqtt.Client) -> None:
        # Nothing is subscribed: the iterator only ends, with MqttError, when the connection drops.
        async for _ in client.messages:
            pass

    async def _publish_status(self, client: aiomqtt.Client) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.mqtt.status_interval_s):
                    await self._status_due.wait()
            self._status_due.clear()
            await client.publish(self._status_topic, encode(self._status()), qos=1, retain=True)
            raise_if_cancelling()

    async def _drain(self, client: aiomqtt.Client) -> None:
        cfg = self.config.store
        boundary = self.store.max_id()  # rows up to here were queued before this connection: backlog
        backlog_cursor, live_cursor = 0, boundary
        bucket = _TokenBucket(cfg.drain_rate_per_s, burst=max(cfg.drain_rate_per_s / 4, cfg.batch_points))
        while True:
            self._wake.clear()
            backlog: list[StoredItem] = []
            if backlog_cursor < boundary and (allowed := bucket.available()) > 0:
                backlog = self.store.fetch(backlog_cursor, boundary, limit=allowed)
                backlog_cursor = backlog[-1].id if backlog else boundary
                bucket.take(len(backlog))
            live = self.store.fetch(live_cursor, None, limit=_LIVE_FETCH)
            if live:
                live_cursor = live[-1].id
            if not backlog and not live:
                pending_backlog = backlog_cursor < boundary
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05 if pending_backlog else None):
                        await self._wake.wait()
                continue
            messages = self._messages(backlog) + self._messages(live)
            async with asyncio.TaskGroup() as tg:
                for m in messages:
                    tg.create_task(self._publish(client, m))
            raise_if_cancelling()
            STORE_DEPTH.labels(self.config.gateway).set(self.store.depth)

    async def _publish(self, client: aiomqtt.Client, message: OutgoingMessage) -> None:
        await client.publish(message.topic, message.payload, qos=1)
        if self._pubacks is not None:
            self._pubacks.check(message.topic)
        self._undelivered_backoff.reset()
        self.store.ack_soon(message.row_ids, {message.seq_key: message.seq + 1})
        self.messages_published += 1
        PUBLISHED.labels(self.config.gateway, message.seq_key[1].value).inc()

    def _next_seq(self, device: str, kind: Kind) -> int:
        seq = self._seq.get((device, kind), 0)
        self._seq[(device, kind)] = seq + 1
        return seq

    def _messages(self, items: list[StoredItem]) -> list[OutgoingMessage]:
        """Telemetry rows batched per device (in order, up to `batch_points`); each event on its own."""
        c = self.config
        out: list[OutgoingMessage] = []
        groups: dict[str, list[StoredItem]] = {}
        order: list[str] = []
        for item in items:
            if item.kind is Kind.EVENT:
                seq = self._next_seq(item.device, Kind.EVENT)
                b = item.body
                payload = encode(Event(v=CONTRACT_VERSION, seq=seq, ts=item.ts_ms, type=b["type"], state=b["state"],
                                       input=b.get("input"), detail=b.get("detail", "")))
                out.append(OutgoingMessage(event_topic(c.park, c.enterprise, item.device), payload, (item.id,),
                                           (item.device, Kind.EVENT), seq))
                continue
            if item.device not in groups:
                order.append(item.device)
            groups.setdefault(item.device, []).append(item)
        for device in order:
            rows = groups[device]
            for i in range(0, len(rows), c.store.batch_points):
                chunk = rows[i : i + c.store.batch_points]
                seq = self._next_seq(device, Kind.TELEMETRY)
                payload = telemetry_payload(seq, [(r.ts_ms, r.body) for r in chunk])
                out.append(OutgoingMessage(telemetry_topic(c.park, c.enterprise, device), payload,
                                           tuple(r.id for r in chunk), (device, Kind.TELEMETRY), seq))
        return out
