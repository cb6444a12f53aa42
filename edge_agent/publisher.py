"""The MQTT side of the agent: one persistent session that drains the store-and-forward queue.

Connection handling follows aiomqtt's own idiom: an async context manager whose background work runs
in named tasks, reconnecting with jittered exponential backoff. Every message is QoS 1 and its rows are
deleted from the store only from paho's `on_publish` for it (`PubackTracker.on_ack`); for QoS > 0 paho
calls it only from `_handle_pubackcomp`, i.e. on PUBACK (paho/mqtt/client.py; QoS 0 messages are the
ones "published" on socket write). The gateway status still goes through `await client.publish`.

While connected, the rows that arrive are sent at once ("live"), and the rows queued before the
connection came up ("backlog") are drained oldest first at `drain_rate_per_s`, several readings of one
device batched into one payload, so a long outage neither floods the broker nor delays live data.

Telemetry and events go out through a sliding window of at most `_WINDOW` unacknowledged messages (fewer if
the broker's Receive Maximum says so), not in batches that wait for their last PUBACK: each PUBACK deletes its
rows (`PubackTracker.on_ack`, then `ReadingStore.ack_soon`). Live rows come from memory (`offer`, called by
the agent once they are committed), so the drain does not read back what was just written. Each publish cycle
takes all rows that are waiting and puts the readings of one device into one payload; the pause between
cycles grows with the cycle's cost (`_SHARE`), so at low load every reading leaves on its own within about a
millisecond, and when polling saturates the event loop messages grow (several readings each, waiting at
most `_MAX_PAUSE_S`) instead of taking the pollers' time.
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
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.backoff import Backoff
from edge_agent.config import GatewayConfig
from edge_agent.metrics import PUBLISHED, STORE_DEPTH
from edge_agent.puback import NotDelivered, PubackTracker, is_undelivered
from edge_agent.store import Kind, ReadingStore, StoredItem
from parkmodel.codec import CONTRACT_VERSION, Event, GatewayStatus, encode, telemetry_payload
from parkmodel.topics import event_topic, status_topic, telemetry_topic
from smartpark.aio import raise_if_cancelling
from smartpark.mqtt import tls_context

log = logging.getLogger(__name__)

#: The last will, retained: what subscribers see once the broker notices the gateway is gone.
OFFLINE_WILL = GatewayStatus(v=CONTRACT_VERSION, state="offline", ts=0, devices={})
#: Live rows fetched at once: enough for a few readings of each of a thousand devices to share a message.
_LIVE_FETCH = 5000
#: Rows kept in memory for the drain at most; a drain that falls this far behind reads them from the store.
_LIVE_CAP = 50_000
#: Unacknowledged telemetry and event messages at most (QoS 1 in flight).
_WINDOW = 64
#: Share of the event loop a publish cycle may take: after a cycle that kept the loop busy for `w` seconds the
#: next one starts `w * (1 - _SHARE) / _SHARE` later (at most `_MAX_PAUSE_S`). At light load that pause is a
#: fraction of a millisecond and every reading leaves on its own; when polling saturates the loop, the readings
#: of a device that arrive during the pause leave together, so the publisher's cost per reading falls as load
#: rises instead of taking the pollers' time.
_SHARE = 0.1
_MAX_PAUSE_S = 0.5


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
        # The sliding window of the current session: messages sent and not yet acknowledged, by message id.
        self._inflight: dict[int, tuple[OutgoingMessage, float]] = {}
        self._window = _WINDOW
        self._room = asyncio.Event()  # set when a PUBACK freed a place in the window
        self._failure: NotDelivered | None = None
        # Rows offered while the drain takes them from memory (`offer`); ids above the drain's live cursor.
        self._live: list[StoredItem] = []
        self._accepting = False
        self._published = {kind: PUBLISHED.labels(config.gateway, kind.value) for kind in Kind}
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

    def offer(self, items: list[StoredItem]) -> None:
        """New rows are in the store, and here they are: while a session runs, the drain takes them from
        memory instead of reading them back (up to `_LIVE_CAP`; beyond it, it catches up from the store)."""
        if self._accepting:
            if len(self._live) + len(items) <= _LIVE_CAP:
                self._live.extend(items)
            else:
                self._accepting = False  # the drain reads them from the store, from its cursor on
                self._live = []
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
            # paho's own limit (20) would queue our window's messages and rescan its queue on every PUBACK; the
            # window below enforces the broker's Receive Maximum instead.
            max_inflight_messages=0,
            **kwargs,  # type: ignore[arg-type]
        )
        # Only status publishes await aiomqtt now (telemetry goes through `PubackTracker.send`); its warning
        # threshold of 10 pending calls stays raised in case many are ever awaited together.
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
                self._accepting, self._live = False, []  # still in the store: the next session's backlog
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
        tracker = self._pubacks
        assert tracker is not None
        self._inflight.clear()
        self._failure = None
        # Two below the broker's limit: the status publishes (aiomqtt, awaited one at a time) share it.
        self._window = max(1, min(_WINDOW, tracker.receive_maximum - 2))
        tracker.on_ack = self._on_ack
        boundary = self.store.max_id()  # rows up to here were queued before this connection: backlog
        backlog_cursor, live_cursor = 0, boundary
        self._live, self._accepting = [], True  # later rows: offered by the agent as they are stored
        bucket = _TokenBucket(cfg.drain_rate_per_s, burst=max(cfg.drain_rate_per_s / 4, cfg.batch_points))
        resume_at = 0.0  # the load-adaptive pause (see `_SHARE`) ends here
        while True:
            self._raise_if_failed()
            if (pause := resume_at - time.monotonic()) > 0:
                await asyncio.sleep(pause)
                self._raise_if_failed()
            self._wake.clear()
            started = time.perf_counter()
            backlog: list[StoredItem] = []
            if backlog_cursor < boundary and (allowed := bucket.available()) > 0:
                backlog = self.store.fetch(backlog_cursor, boundary, limit=allowed)
                backlog_cursor = backlog[-1].id if backlog else boundary
                bucket.take(len(backlog))
            if self._accepting:
                live, self._live = self._live, []
            else:
                live = self.store.fetch(live_cursor, None, limit=_LIVE_FETCH)
                # Caught up with the store: from here on (no await in between) new rows come through `offer`.
                self._accepting = len(live) < _LIVE_FETCH
            if live:
                live_cursor = live[-1].id
            if not backlog and not live:
                await self._wait(self._wake, 0.05 if backlog_cursor < boundary else None)
                continue
            busy = 0.0  # seconds this cycle kept the event loop to itself
            for message in self._messages(backlog) + self._messages(live):
                while len(self._inflight) >= self._window:
                    busy += time.perf_counter() - started
                    self._room.clear()
                    await self._wait(self._room, None)
                    self._raise_if_failed()
                    started = time.perf_counter()
                self._inflight[tracker.send(message.topic, message.payload)] = (message, time.monotonic())
            busy += time.perf_counter() - started
            resume_at = time.monotonic() + min(_MAX_PAUSE_S, busy * (1 - _SHARE) / _SHARE)
            STORE_DEPTH.labels(self.config.gateway).set(self.store.depth)

    async def _wait(self, event: asyncio.Event, at_most: float | None) -> None:
        """Wait for `event` (`at_most` seconds, None = no limit), but fail the session if the oldest message
        in flight has waited longer than `publish_timeout_s` for its PUBACK (as aiomqtt's `publish` would)."""
        limit = self.config.mqtt.publish_timeout_s
        if self._inflight:
            _, sent_at = next(iter(self._inflight.values()))  # dicts keep insertion order: the oldest
            left = sent_at + limit - time.monotonic()
            if left <= 0:
                raise aiomqtt.MqttError(f"no PUBACK within {limit:g} s")
            at_most = left if at_most is None else min(at_most, left)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(at_most):
                await event.wait()

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure
        raise_if_cancelling()

    def _on_ack(self, mid: int, reason: ReasonCode | None) -> None:
        """A PUBACK of the window (called by paho, on the event loop): delete the message's rows, or fail."""
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return
        message = entry[0]
        if is_undelivered(reason):
            assert reason is not None
            if self._failure is None:
                self._failure = NotDelivered(message.topic, reason)
            self._room.set()
            self._wake.set()
            return
        self._undelivered_backoff.reset()
        self.store.ack_soon(message.row_ids, {message.seq_key: message.seq + 1})
        self.messages_published += 1
        self._published[message.seq_key[1]].inc()
        # Room for more at once, not at a low-water mark: Mosquitto leaves Nagle on (no `set_tcp_nodelay`), so
        # it holds back further PUBACKs until our next segment acknowledges its first one; a sender that paused
        # until half the window came back waited out the 40 ms delayed ACK every time.
        self._room.set()

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
