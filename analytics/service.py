"""The live KPI service: telemetry in over a shared MQTT subscription, park KPIs out every few seconds.

    async with AnalyticsService(settings, registry) as svc:
        await svc.wait_subscribed()
        ...
        svc.snapshot()

On entry it compiles the kernels in a worker thread (never inside the event loop), restores the
streaming state from its checkpoint under `settings.var_dir` and catches up from InfluxDB `telemetry`
since then (without a checkpoint: today's counters from InfluxDB, so a restart does not zero the day),
then runs five named tasks in one TaskGroup: the MQTT receive loop (reconnecting with jittered
exponential backoff), the micro-batch loop folding received payloads into the streaming state, the
publish loop writing `sp/v1/{park}/kpi` (QoS 0) and measurement `kpi` every
`analytics.publish_interval_s`, the checkpoint loop, and the registry watch: when `settings.registry`
changes (an admin's edit through the API) and validates, `apply_registry` swaps it in without a restart,
carrying the streaming state over by device id.

Hot path (profiled with py-spy on bench/analytics.py, 10 M readings): `receive` only files the payload
under its device (one dict lookup per topic); `fold` decodes the whole micro-batch into columns
(analytics.decode: msgspec + C-level list extends, ~60 % of the time), validates it as arrays, and
advances the state with the numba kernels (~25 %: sort, counter steps, window booking).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter as Tally
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiomqtt
import httpx
import prometheus_client

from analytics import influx, kernels
from analytics.aggregate import compute_kpis
from analytics.checkpoint import checkpoint_path, read_checkpoint, write_checkpoint
from analytics.decode import decode_batch
from analytics.devices import build_index
from analytics.factors import Factors, default_factors
from analytics.state import StateLimits, StreamState, day_start_ms
from parkmodel.codec import CONTRACT_VERSION, Reason, encode
from parkmodel.registry import Registry
from parkmodel.topics import ROOT, TELEMETRY_SUBSCRIPTION, DeviceTopic, TopicError, kpi_topic
from parkmodel.watch import RegistryWatcher
from smartpark.aio import raise_if_cancelling
from smartpark.config import Settings
from smartpark.mqtt import mqtt_client_kwargs

log = logging.getLogger(__name__)

MESSAGES = prometheus_client.Counter(
    "smartpark_analytics_messages", "Telemetry messages seen by analytics, by result", ["result"]
)
POINTS = prometheus_client.Counter("smartpark_analytics_values", "Telemetry values folded into the state")
PUBLISHES = prometheus_client.Counter("smartpark_analytics_kpi_publishes", "KPI rounds published")
REGISTRY_RELOADS = prometheus_client.Counter("smartpark_analytics_registry_reloads", "Registry versions applied live")
INFLUX_FAILURES = prometheus_client.Counter("smartpark_analytics_influx_failures", "Failed InfluxDB calls")

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


#: Catch-up re-reads this much before the checkpoint (points already counted are skipped by the anchors).
CATCH_UP_OVERLAP_MS = 60_000
#: Catch-up reads InfluxDB in slices of this length.
CATCH_UP_SLICE_MS = 3600_000


class AnalyticsService:
    """Live KPI service of every park of a registry.

    Args:
        settings: platform settings (mqtt, influx and analytics sections are used).
        registry: the park registry.
        limits: gap and staleness limits of the streaming state.
        factors: tce and CO2 factors (default: the shipped REFERENCE.md figures).
        batch_interval_s: how often received payloads are folded into the state.
        max_batch: fold at once when this many payloads are pending.
        checkpoint_interval_s: how often the state is written to its checkpoint file.
        checkpoint: checkpoint file (default: `{settings.var_dir}/analytics-{client_id}.npz`).
        watch_registry: follow changes of the registry file `settings.registry` (`apply_registry`).
        registry_poll_s: how often the registry file's signature is compared.
    """

    def __init__(self, settings: Settings, registry: Registry, *, limits: StateLimits | None = None,
                 factors: Factors | None = None, batch_interval_s: float = 0.2, max_batch: int = 2_000,
                 checkpoint_interval_s: float = 30.0, checkpoint: Path | None = None,
                 watch_registry: bool = True, registry_poll_s: float = 1.0) -> None:
        self.settings = settings
        registry = own_parks(registry, settings.analytics.parks)
        self.registry = registry
        self.factors = factors or default_factors()
        self.index = build_index(registry)
        self.state = StreamState(self.index, now_ms(), limits)
        self.batch_interval_s = batch_interval_s
        self.max_batch = max_batch
        self.stats: Tally[str] = Tally()
        self.checkpoint_interval_s = checkpoint_interval_s
        self.checkpoint = checkpoint or checkpoint_path(settings.var_dir, settings.analytics.client_id)
        self._pending_devices: list[int] = []
        self._pending_payloads: list[bytes] = []
        self._topic_device: dict[str, int] = {}
        self._newest_ms = 0
        self._checkpoint_cap_ms: int | None = None  # set when a catch-up left a gap unread
        self._snapshot: dict[str, dict[str, Any]] = {}
        self._client: aiomqtt.Client | None = None
        self._subscribed = asyncio.Event()
        self._http: httpx.AsyncClient | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._stack = contextlib.AsyncExitStack()
        self.watcher = RegistryWatcher(settings.registry, self.apply_registry, interval_s=registry_poll_s,
                                       name="analytics-registry-watch") if watch_registry else None

    async def __aenter__(self) -> Self:
        try:
            cfg = self.settings.influx
            auth = (cfg.username, cfg.password.get_secret_value()) if cfg.username and cfg.password else None
            self._http = await self._stack.enter_async_context(
                httpx.AsyncClient(base_url=cfg.url, timeout=cfg.timeout_s, auth=auth)
            )
            await asyncio.to_thread(kernels.warm_up)  # compile before the first batch, off the event loop
            if self.watcher is not None:
                self.watcher.prime()  # edits from here on are applied (the file should hold `registry`)
            await self.restore()
            tasks = await self._stack.enter_async_context(asyncio.TaskGroup())
            self._loops = [
                tasks.create_task(self._mqtt_loop(), name="analytics-mqtt"),
                tasks.create_task(self._batch_loop(), name="analytics-batch"),
                tasks.create_task(self._publish_loop(), name="analytics-publish"),
                tasks.create_task(self._checkpoint_loop(), name="analytics-checkpoint"),
            ]
            if self.watcher is not None:
                self._loops.append(tasks.create_task(self.watcher.run(), name="analytics-registry-watch"))
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        for task in self._loops:  # the loops run until cancelled
            task.cancel()
        try:
            await self._stack.aclose()  # the caller's own exception propagates unwrapped
        finally:
            if self._loops:
                self.fold()
                await self.save_checkpoint()

    async def wait_subscribed(self) -> None:
        """Wait until the telemetry subscription is active (wrap in `asyncio.timeout`)."""
        await self._subscribed.wait()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """The latest published KPIs per park: `{park: {"v", "ts", "park", "kpi", "enterprises"}}`."""
        return self._snapshot

    # --- registry changes ----------------------------------------------------------------------

    async def apply_registry(self, registry: Registry) -> None:
        """Swap in a new registry without a restart (the registry watch calls this on each valid change).

        Payloads received so far are folded under the old index first; then the state is carried over by
        device id: devices kept keep today's and the month's energy and their anchors, new devices start
        empty, removed devices drop out of the KPIs (and their telemetry counts as unknown from now on).

        Args:
            registry: the new, validated registry.
        """
        registry = own_parks(registry, self.settings.analytics.parks)
        index = await asyncio.to_thread(build_index, registry)  # reads device templates: off the loop
        # From here on no await: no payload can be filed under the old index after the fold.
        self.fold()
        old = set(self.index.device_ids)
        self.state = self.state.migrated(index)
        self.registry, self.index = registry, index
        self._topic_device = {}
        REGISTRY_RELOADS.inc()
        new = set(index.device_ids)
        log.info("analytics applied a new registry: %d devices (%d added, %d removed)", len(new),
                 len(new - old), len(old - new))

    # --- restart: checkpoint and catch-up ------------------------------------------------------

    async def restore(self) -> None:
        """Restore the state from the checkpoint and catch up from InfluxDB since it (or, without a
        usable checkpoint, restore today's counters from InfluxDB)."""
        try:
            saved_at = await asyncio.to_thread(read_checkpoint, self.checkpoint, self.state)
        except ValueError as exc:
            log.warning("analytics ignores its checkpoint: %s", exc)
            self.state = StreamState(self.index, now_ms(), self.state.limits)
            saved_at = None
        if saved_at is None:
            await self.catch_up()
            return
        log.info("analytics restored its state from %s (saved at %d)", self.checkpoint, saved_at)
        await self.catch_up_since(saved_at - CATCH_UP_OVERLAP_MS)

    async def catch_up_since(self, start_ms: int) -> None:
        """Fold the counters and power stored in InfluxDB since `start_ms` into the state, in slices."""
        assert self._http is not None
        end = now_ms()
        n = 0
        read_to = start_ms  # the end of the last slice read: what the checkpoint may claim
        try:
            for a in range(start_ms, end, CATCH_UP_SLICE_MS):
                z = min(a + CATCH_UP_SLICE_MS, end)
                cols = await influx.read_telemetry(self._http, self.settings.influx.database, self.index, a, z)
                self.state.update(*cols, now_ms=z)
                n += cols[0].shape[0]
                read_to = z
            read_to = end
        except (httpx.HTTPError, influx.InfluxError, ValueError) as exc:
            INFLUX_FAILURES.inc()
            # Live data must not move the checkpoint past the gap either, or no restart would replay it.
            self._checkpoint_cap_ms = read_to
            log.warning("analytics catch-up from InfluxDB stopped early at %d (the checkpoint stays there, so "
                        "the next start reads the rest): %s", read_to, exc)
        self._newest_ms = read_to
        log.info("analytics caught up %d values from InfluxDB since %d", n, start_ms)

    async def save_checkpoint(self) -> None:
        """Write the state's checkpoint (arrays copied here, the file written in a worker thread)."""
        arrays = self.state.export_arrays()
        try:
            saved_at = self._newest_ms or now_ms()
            if self._checkpoint_cap_ms is not None:
                saved_at = min(saved_at, self._checkpoint_cap_ms)
            await asyncio.to_thread(write_checkpoint, self.checkpoint, arrays, saved_at)
        except OSError as exc:
            log.warning("analytics could not write its checkpoint %s: %s", self.checkpoint, exc)

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(self.checkpoint_interval_s)
            await self.save_checkpoint()

    async def catch_up(self) -> None:
        """Restore today's counters from measurement `telemetry` (no-op if InfluxDB cannot answer)."""
        assert self._http is not None
        at = now_ms()
        start = day_start_ms(at)
        try:
            dev, fld, first, last = await influx.read_today_counters(
                self._http, self.settings.influx.database, self.index, start
            )
        except (httpx.HTTPError, influx.InfluxError, ValueError) as exc:
            INFLUX_FAILURES.inc()
            log.warning("analytics catch-up from InfluxDB failed, today's energy starts from zero: %s", exc)
            return
        self.state.roll_day(at)
        self.state.seed_today(dev, fld, first, last, at)
        log.info("analytics caught up %d counters of today from InfluxDB", dev.shape[0])

    # --- receiving ------------------------------------------------------------------------------

    def subscriptions(self) -> list[str]:
        """One shared subscription for the whole stream, or one per park this worker owns."""
        group = self.settings.analytics.group
        parks = self.settings.analytics.parks
        if not parks:
            return [f"$share/{group}/{TELEMETRY_SUBSCRIPTION}"]
        return [f"$share/{group}/{ROOT}/{park}/+/+/telemetry" for park in parks]

    def _mqtt_client(self) -> aiomqtt.Client:
        cfg = self.settings.mqtt
        return aiomqtt.Client(
            cfg.host, cfg.port, identifier=self.settings.analytics.client_id, keepalive=cfg.keepalive_s,
            **mqtt_client_kwargs(cfg),
        )

    async def _mqtt_loop(self) -> None:
        attempt = 0
        while True:
            try:
                async with self._mqtt_client() as client:
                    await client.subscribe([(topic, 1) for topic in self.subscriptions()])
                    self._client = client
                    self._subscribed.set()
                    attempt = 0
                    log.info("analytics subscribed to %s", ", ".join(self.subscriptions()))
                    async for message in client.messages:
                        self.receive(message.topic.value, message.payload)
                        if self.pending >= self.max_batch:
                            self.fold()
            except aiomqtt.MqttError as exc:
                self._client = None
                self._subscribed.clear()
                delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**attempt) * random.uniform(0.5, 1.0)
                attempt += 1
                log.warning("analytics MQTT connection lost (%s); reconnecting in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    def receive(self, topic: str, payload: Any) -> None:
        """File one telemetry message for the next micro-batch (decoded there, all at once).

        Args:
            topic: MQTT topic.
            payload: raw payload (bytes).
        """
        d = self._topic_device.get(topic)
        if d is None:
            try:
                parsed = DeviceTopic.parse(topic)
            except TopicError:
                self._count(Reason.TOPIC)
                return
            ref = self.registry.device_at(parsed.park, parsed.enterprise, parsed.device)
            if ref is None:
                self._count(Reason.UNKNOWN_DEVICE)
                return
            d = self._topic_device[topic] = self.index.position[ref.device.id]  # known topics only: bounded
        self._pending_devices.append(d)
        self._pending_payloads.append(payload if isinstance(payload, bytes) else bytes(payload))

    @property
    def pending(self) -> int:
        """Payloads waiting for the next micro-batch."""
        return len(self._pending_payloads)

    def _count(self, result: str, n: int = 1) -> None:
        self.stats[str(result)] += n
        MESSAGES.labels(result=str(result)).inc(n)

    def fold(self, at_ms: int | None = None) -> int:
        """Decode the pending payloads and fold their values into the streaming state.

        Returns:
            The number of values folded.
        """
        if not self._pending_payloads:
            return 0
        at = now_ms() if at_ms is None else at_ms
        devices, payloads = self._pending_devices, self._pending_payloads
        self._pending_devices, self._pending_payloads = [], []
        cols = decode_batch(devices, payloads, at)
        for reason, n in cols.rejected.items():
            self._count(reason, n)  # ingest dead-letters them; analytics only skips them
        if cols.messages_ok:
            self._count("ok", cols.messages_ok)
        n = len(cols)
        if n:
            self.state.update(cols.device, cols.ts, cols.field, cols.value, now_ms=at)
            POINTS.inc(n)
            self._newest_ms = max(self._newest_ms, at)
        return n

    async def _batch_loop(self) -> None:
        while True:
            await asyncio.sleep(self.batch_interval_s)
            self.fold()

    # --- publishing -----------------------------------------------------------------------------

    def compute(self, at_ms: int | None = None) -> dict[str, dict[str, Any]]:
        """Fold what is pending and compute the KPI message of every park."""
        self.fold()
        at = now_ms() if at_ms is None else at_ms
        self.state.roll_day(at)
        kpis = compute_kpis(self.index, self.state, at, self.factors)
        return {park: {"v": CONTRACT_VERSION, "ts": at, "park": park, **k} for park, k in kpis.items()}

    async def publish_once(self) -> None:
        """Compute the KPIs, publish them per park and write them to InfluxDB."""
        messages = self.compute()
        self._snapshot = messages
        client = self._client
        if client is not None:
            try:
                for park, msg in messages.items():
                    await client.publish(kpi_topic(park), encode(msg), qos=0)
            except aiomqtt.MqttError as exc:
                log.warning("analytics could not publish KPIs: %s", exc)
        lines = [line for park, msg in messages.items() for line in influx.kpi_lines(park, msg, msg["ts"])]
        assert self._http is not None
        try:
            await influx.write_lines(self._http, self.settings.influx.database, lines)
        except (httpx.HTTPError, influx.InfluxError) as exc:
            INFLUX_FAILURES.inc()
            log.warning("analytics could not write KPIs to InfluxDB: %s", exc)
        PUBLISHES.inc()

    async def _publish_loop(self) -> None:
        interval = self.settings.analytics.publish_interval_s
        while True:
            started = time.monotonic()
            await self.publish_once()
            raise_if_cancelling()
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


def own_parks(registry: Registry, parks: list[str]) -> Registry:
    """The part of the registry a worker partitioned by park handles (all of it when `parks` is empty).

    Raises:
        ValueError: a configured park is not in the registry (names the setting).
    """
    if not parks:
        return registry
    unknown = sorted(set(parks) - {p.id for p in registry.parks})
    if unknown:
        raise ValueError(f"analytics.parks: {', '.join(unknown)} not in the registry")
    return Registry(version=registry.version, parks=[p for p in registry.parks if p.id in parks])


async def run(settings: Settings, registry: Registry, factors: Factors | None = None) -> None:
    """Run the service until cancelled (the CLI's main)."""
    async with AnalyticsService(settings, registry, factors=factors):
        await asyncio.Event().wait()
