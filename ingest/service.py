"""The ingest service: MQTT shared subscription -> validate -> batch -> InfluxDB, ack after write.

Delivery guarantee: at-least-once into InfluxDB, which makes it effectively exactly-once per series and
timestamp (a rewritten point overwrites itself). A message is acknowledged to the broker only after all
its points were accepted by InfluxDB or it went to the dead letter, so whatever a crash interrupts is
redelivered by the broker to the next session with the same client id. While InfluxDB is down the
receiver stops at `max_in_flight` unacknowledged messages and the broker holds the rest.

One connection is one *session*: a receiver task and a writer task in a TaskGroup. Losing the
connection ends the session (unacknowledged messages stay with the broker), and the service reconnects
with jittered exponential backoff and starts a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType
from typing import Any, Self

import aiomqtt

from ingest.acks import AckSequencer
from ingest.batch import Accepted, Batcher
from ingest.deadletter import dead_letter_payload, dead_letter_topic
from ingest.influx import InfluxWriter, WriteRejected, backoff_delay
from ingest.lineproto import LineProtocolError
from ingest.metrics import IngestMetrics, serve_metrics
from ingest.mqtt import SESSION_EXPIRY_S, ack, make_client, messages
from ingest.translate import Translator
from parkmodel.codec import CodecError, Reason
from parkmodel.registry import Registry
from parkmodel.topics import EVENT_SUBSCRIPTION, STATUS_SUBSCRIPTION, TELEMETRY_SUBSCRIPTION, shared
from parkmodel.watch import RegistryWatcher
from smartpark.aio import raise_if_cancelling
from smartpark.config import Settings

log = logging.getLogger("ingest")

KINDS = ("telemetry", "event", "status")
RECONNECT_BASE_S = 0.5
RECONNECT_MAX_S = 30.0
DEFAULT_WRITERS = 2
YIELD_EVERY = 200  # messages handled before the receiver lets the other tasks run


def subscriptions(group: str) -> list[tuple[str, int]]:
    """The shared subscriptions of ingest group `group`, all at QoS 1.

    Args:
        group: the shared-subscription group; workers of one group split the stream.
    """
    return [(shared(group, s), 1) for s in (TELEMETRY_SUBSCRIPTION, EVENT_SUBSCRIPTION, STATUS_SUBSCRIPTION)]


class IngestService:
    """`async with IngestService(settings, registry) as svc:` runs ingest until the block exits.

    Leaving the block normally drains: the receiver stops, queued points are written and acknowledged
    (for at most `drain_timeout_s`). Leaving it by cancellation (or `abort()`) acknowledges nothing more,
    like a killed process: the broker redelivers what was not acknowledged.

    Args:
        settings: mqtt, influx and ingest sections.
        registry: which devices exist in which park and enterprise.
        client_id: overrides `settings.ingest.client_id` (one per worker).
        metrics_port: serve Prometheus metrics on this port (0 = any free port, see `metrics_address`).
        metrics_host: address for the metrics endpoint.
        drain_timeout_s: longest a graceful stop waits for the last writes.
        session_expiry_s: how long the broker keeps this worker's session (and its queue) while it is away.
        writers: concurrent InfluxDB write requests (acknowledgements still go out in arrival order).
        watch_registry: follow edits of `settings.registry` (made through the API) without a restart.
    """

    def __init__(self, settings: Settings, registry: Registry, *, client_id: str | None = None,
                 metrics_port: int | None = None, metrics_host: str = "127.0.0.1",
                 drain_timeout_s: float = 10.0, session_expiry_s: int = SESSION_EXPIRY_S,
                 writers: int = DEFAULT_WRITERS, watch_registry: bool = True) -> None:
        if writers < 1:
            raise ValueError(f"writers must be >= 1, got {writers}")
        self._writers = writers
        self.settings = settings
        self.client_id = client_id or settings.ingest.client_id
        self.metrics = IngestMetrics()
        self.metrics_address: tuple[str, int] | None = None
        self._metrics_port = metrics_port
        self._metrics_host = metrics_host
        self._drain_timeout_s = drain_timeout_s
        self._session_expiry_s = session_expiry_s
        self._translator = Translator(registry)
        self._watch_registry = watch_registry
        self._kind_counters = {k: self.metrics.messages.labels(k) for k in (*KINDS, "other")}
        self._stopping = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._exit_stack = contextlib.AsyncExitStack()

    # -- lifecycle -----------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._metrics_port is not None:
            server = await self._exit_stack.enter_async_context(
                serve_metrics(self.metrics, self._metrics_host, self._metrics_port))
            host, port = server.sockets[0].getsockname()[:2]
            self.metrics_address = (host, port)
            log.info("metrics on http://%s:%s/metrics", host, port)
        if self._watch_registry:
            await self._exit_stack.enter_async_context(
                RegistryWatcher(self.settings.registry, self.apply_registry, name=f"ingest-registry-{self.client_id}"))
        self._task = asyncio.create_task(self._run(), name=f"ingest-{self.client_id}")
        return self

    def apply_registry(self, registry: Registry) -> None:
        """Take a new registry: new devices are accepted, removed ones dead-lettered, from the next message."""
        self._translator = Translator(registry)
        log.info("ingest %s: registry reloaded (%d devices)", self.client_id, sum(1 for _ in registry.devices()))

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            if exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
                await self.abort()
            else:
                await self.stop()
        finally:
            await self._exit_stack.aclose()

    async def wait_subscribed(self) -> None:
        """Return once the first session subscribed (raises if the service died before that)."""
        assert self._task is not None, "use `async with IngestService(...)`"
        waiter = asyncio.ensure_future(self._subscribed.wait())
        try:
            await asyncio.wait((waiter, self._task), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not self._subscribed.is_set():
            self._task.result()  # raises what killed it
            raise RuntimeError("ingest stopped before it subscribed")

    async def wait_until(self, stop: asyncio.Event) -> None:
        """Return when `stop` is set or the service ended by itself (an error, raised on exit).

        Args:
            stop: the event that asks for a stop.
        """
        assert self._task is not None, "use `async with IngestService(...)`"
        waiter = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((waiter, self._task), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()

    async def stop(self) -> None:
        """Stop taking messages, write and acknowledge what is queued, disconnect."""
        self._stopping.set()
        if self._task is None:
            return
        if self._task.done():  # aborted or died: report a death, not an abort
            if not self._task.cancelled():
                self._task.result()
            return
        try:
            async with asyncio.timeout(self._drain_timeout_s):
                await asyncio.shield(self._task)
        except TimeoutError:
            log.warning("ingest %s: drain took longer than %.1f s; unacknowledged messages stay with the broker",
                        self.client_id, self._drain_timeout_s)
            await self.abort()

    async def abort(self) -> None:
        """Stop at once without acknowledging anything more (as if the process were killed)."""
        self._stopping.set()
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def stats(self) -> dict[str, Any]:
        """A snapshot of the service's counters (see `IngestMetrics.stats`)."""
        return self.metrics.stats()

    # -- sessions ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        async with InfluxWriter(self.settings.influx, on_retry=self.metrics.write_retries.inc) as writer:
            attempt = 0
            while not self._stopping.is_set():
                lost: BaseException | None = None
                try:
                    client = make_client(self.settings, client_id=self.client_id,
                                         session_expiry_s=self._session_expiry_s)
                    async with client:
                        await client.subscribe(subscriptions(self.settings.ingest.group))
                        log.info("ingest %s subscribed (group %s)", self.client_id, self.settings.ingest.group)
                        self.metrics.sessions.inc()
                        self._subscribed.set()
                        attempt = 0
                        await self._session(client, writer)
                except* aiomqtt.MqttError as group:
                    lost = group.exceptions[0]
                if lost is None:
                    return
                self.metrics.connections_lost.inc()
                self.metrics.in_flight.set(0)
                delay = backoff_delay(attempt, RECONNECT_BASE_S, RECONNECT_MAX_S)
                attempt += 1
                log.warning("ingest %s: MQTT connection lost (%s); reconnecting in %.1f s",
                            self.client_id, lost, delay)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stopping.wait()

    async def _session(self, client: aiomqtt.Client, writer: InfluxWriter) -> None:
        ingest = self.settings.ingest
        acks = AckSequencer(lambda mids: ack(client, mids), ingest.max_in_flight)
        batcher = Batcher(ingest.batch_points, ingest.batch_interval_s)
        async with asyncio.TaskGroup() as tg:
            receiver = tg.create_task(self._receive(client, acks, batcher), name=f"ingest-receive-{self.client_id}")
            for n in range(self._writers):  # InfluxDB parses one request while the next is being formatted
                tg.create_task(self._write_loop(client, writer, acks, batcher), name=f"ingest-write{n}-{self.client_id}")
            tg.create_task(self._stop_when_asked(receiver, batcher), name=f"ingest-stop-{self.client_id}")

    async def _stop_when_asked(self, receiver: asyncio.Task[None], batcher: Batcher) -> None:
        await self._stopping.wait()
        receiver.cancel()  # takes nothing more; what it already queued is written below
        batcher.flush()

    async def _receive(self, client: aiomqtt.Client, acks: AckSequencer, batcher: Batcher) -> None:
        counters = self._kind_counters
        in_flight = self.metrics.in_flight
        received = 0
        async for message in messages(client):
            topic = message.topic.value
            payload = message.payload if isinstance(message.payload, bytes) else bytes(str(message.payload), "utf-8")
            counters.get(topic.rpartition("/")[2], counters["other"]).inc()
            ticket = acks.open(message.mid, message.qos)
            try:
                body, points = self._translator.translate_body(topic, payload)  # the registry may be swapped
            except CodecError as exc:
                await self._dead_letter(client, topic, payload, exc.reason, exc.message)
                acks.settle(ticket)
            except LineProtocolError as exc:
                await self._dead_letter(client, topic, payload, Reason.SCHEMA, str(exc))
                acks.settle(ticket)
            else:
                if points:
                    batcher.add(Accepted(ticket, topic, payload, body, points, time.monotonic()))
                else:
                    acks.settle(ticket)  # e.g. an online status naming no devices: nothing to store
            in_flight.set(acks.in_flight)
            await acks.wait_for_room()
            received += 1
            if batcher.points >= batcher.max_points or received % YIELD_EVERY == 0:
                # aiomqtt hands over queued messages without suspending, so a backlog of thousands would keep
                # this loop running while the writers (a full batch is waiting) and the socket (PUBACKs,
                # keepalive) starve: step aside for one loop iteration.
                await asyncio.sleep(0)

    async def _write_loop(self, client: aiomqtt.Client, writer: InfluxWriter, acks: AckSequencer,
                          batcher: Batcher) -> None:
        await writer.ensure_database()
        while batch := await batcher.next_batch():
            await self._write_items(client, writer, batch)
            for item in batch:
                acks.settle(item.ticket)
            self.metrics.batch_latency.observe(time.monotonic() - batch[0].received_at)
            self.metrics.in_flight.set(acks.in_flight)

    async def _write_items(self, client: aiomqtt.Client, writer: InfluxWriter, items: list[Accepted]) -> None:
        """Write `items`; when InfluxDB refuses the data, bisect so only the refused messages are dead-lettered."""
        try:
            await writer.write_body(b"\n".join([item.body for item in items]))
        except WriteRejected as exc:
            if len(items) == 1:
                reason = Reason.TOO_LARGE if exc.status == 413 else Reason.SCHEMA
                await self._dead_letter(client, items[0].topic, items[0].payload, reason, str(exc))
                return
            half = len(items) // 2
            await self._write_items(client, writer, items[:half])
            await self._write_items(client, writer, items[half:])
            return
        self.metrics.points_written.inc(sum(item.points for item in items))
        self.metrics.batches_written.inc()

    async def _dead_letter(self, client: aiomqtt.Client, topic: str, payload: bytes, reason: Reason,
                           error: str) -> None:
        self.metrics.rejected.labels(reason.value).inc()
        log.info("dead letter %s from %s: %s", reason.value, topic, error)
        body = dead_letter_payload(topic, payload, reason, error, int(time.time() * 1000))
        await client.publish(dead_letter_topic(reason), body, qos=1)
        raise_if_cancelling()


async def run_ingest(settings: Settings, registry: Registry, *, metrics_port: int | None = None,
                     stop: asyncio.Event | None = None) -> None:
    """Run ingest until cancelled (or until `stop` is set, then drain).

    Args:
        settings: mqtt, influx and ingest sections.
        registry: the park registry.
        metrics_port: serve Prometheus metrics on this port.
        stop: set it to stop gracefully.
    """
    async with IngestService(settings, registry, metrics_port=metrics_port) as service:
        await service.wait_until(stop or asyncio.Event())
        log.info("ingest stopping: %s", service.stats())
