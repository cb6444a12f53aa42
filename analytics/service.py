"""The live KPI service: telemetry in over a shared MQTT subscription, park KPIs out every few seconds.

    async with AnalyticsService(settings, registry) as svc:
        await svc.wait_subscribed()
        ...
        svc.snapshot()

On entry it restores today's counters from InfluxDB (a restart does not zero the day), then runs
three named tasks in one TaskGroup: the MQTT receive loop (reconnecting with jittered exponential
backoff), the micro-batch loop folding received points into the streaming state, and the publish
loop writing `sp/v1/{park}/kpi` (QoS 0) and measurement `kpi` every `analytics.publish_interval_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from array import array
from collections import Counter as Tally
from types import TracebackType
from typing import Any, Self

import aiomqtt
import httpx
import numpy as np
import prometheus_client

from analytics import influx
from analytics.aggregate import compute_kpis
from analytics.devices import F_OTHER, FIELD_CODES, build_index
from analytics.factors import Factors, default_factors
from analytics.state import StateLimits, StreamState, day_start_ms
from parkmodel.codec import CONTRACT_VERSION, CodecError, Reason, decode_telemetry, encode
from parkmodel.registry import Registry
from parkmodel.topics import TELEMETRY_SUBSCRIPTION, DeviceTopic, TopicError, kpi_topic
from smartpark.config import Settings

log = logging.getLogger(__name__)

MESSAGES = prometheus_client.Counter(
    "smartpark_analytics_messages", "Telemetry messages seen by analytics, by result", ["result"]
)
POINTS = prometheus_client.Counter("smartpark_analytics_values", "Telemetry values folded into the state")
PUBLISHES = prometheus_client.Counter("smartpark_analytics_kpi_publishes", "KPI rounds published")
INFLUX_FAILURES = prometheus_client.Counter("smartpark_analytics_influx_failures", "Failed InfluxDB calls")

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Pending:
    """Values received since the last micro-batch, as growable typed arrays."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.device = array("q")
        self.ts = array("q")
        self.field = array("q")
        self.value = array("d")

    def __len__(self) -> int:
        return len(self.ts)

    def take(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        out = (np.frombuffer(self.device, dtype=np.int64).copy(), np.frombuffer(self.ts, dtype=np.int64).copy(),
               np.frombuffer(self.field, dtype=np.int64).copy(), np.frombuffer(self.value, dtype=np.float64).copy())
        self.clear()
        return out


class AnalyticsService:
    """Live KPI service of every park of a registry.

    Args:
        settings: platform settings (mqtt, influx and analytics sections are used).
        registry: the park registry.
        limits: gap and staleness limits of the streaming state.
        factors: tce and CO2 factors (default: the shipped REFERENCE.md figures).
        batch_interval_s: how often received points are folded into the state.
        max_batch: fold at once when this many values are pending.
    """

    def __init__(self, settings: Settings, registry: Registry, *, limits: StateLimits | None = None,
                 factors: Factors | None = None, batch_interval_s: float = 0.2, max_batch: int = 50_000) -> None:
        self.settings = settings
        self.registry = registry
        self.factors = factors or default_factors()
        self.index = build_index(registry)
        self.state = StreamState(self.index, now_ms(), limits)
        self.batch_interval_s = batch_interval_s
        self.max_batch = max_batch
        self.stats: Tally[str] = Tally()
        self._pending = _Pending()
        self._snapshot: dict[str, dict[str, Any]] = {}
        self._client: aiomqtt.Client | None = None
        self._subscribed = asyncio.Event()
        self._http: httpx.AsyncClient | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Self:
        try:
            cfg = self.settings.influx
            auth = (cfg.username, cfg.password.get_secret_value()) if cfg.username and cfg.password else None
            self._http = await self._stack.enter_async_context(
                httpx.AsyncClient(base_url=cfg.url, timeout=cfg.timeout_s, auth=auth)
            )
            await self.catch_up()
            tasks = await self._stack.enter_async_context(asyncio.TaskGroup())
            self._loops = [
                tasks.create_task(self._mqtt_loop(), name="analytics-mqtt"),
                tasks.create_task(self._batch_loop(), name="analytics-batch"),
                tasks.create_task(self._publish_loop(), name="analytics-publish"),
            ]
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        for task in self._loops:  # the loops run until cancelled
            task.cancel()
        await self._stack.aclose()  # the caller's own exception propagates unwrapped

    async def wait_subscribed(self) -> None:
        """Wait until the telemetry subscription is active (wrap in `asyncio.timeout`)."""
        await self._subscribed.wait()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """The latest published KPIs per park: `{park: {"v", "ts", "park", "kpi", "enterprises"}}`."""
        return self._snapshot

    # --- catch-up -------------------------------------------------------------------------------

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

    def subscription(self) -> str:
        return f"$share/{self.settings.analytics.group}/{TELEMETRY_SUBSCRIPTION}"

    def _mqtt_client(self) -> aiomqtt.Client:
        cfg = self.settings.mqtt
        return aiomqtt.Client(
            cfg.host, cfg.port, identifier=self.settings.analytics.client_id, username=cfg.username,
            password=cfg.password.get_secret_value() if cfg.password else None, keepalive=cfg.keepalive_s,
        )

    async def _mqtt_loop(self) -> None:
        attempt = 0
        while True:
            try:
                async with self._mqtt_client() as client:
                    await client.subscribe(self.subscription(), qos=1)
                    self._client = client
                    self._subscribed.set()
                    attempt = 0
                    log.info("analytics subscribed to %s", self.subscription())
                    async for message in client.messages:
                        self.receive(message.topic.value, message.payload)
                        if len(self._pending) >= self.max_batch:
                            self.fold()
            except aiomqtt.MqttError as exc:
                self._client = None
                self._subscribed.clear()
                delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**attempt) * random.uniform(0.5, 1.0)
                attempt += 1
                log.warning("analytics MQTT connection lost (%s); reconnecting in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    def receive(self, topic: str, payload: Any) -> None:
        """Decode one telemetry message into the pending micro-batch; invalid ones are counted and skipped.

        Args:
            topic: MQTT topic.
            payload: raw payload (bytes).
        """
        try:
            parsed = DeviceTopic.parse(topic)
        except TopicError:
            self._count(Reason.TOPIC)
            return
        ref = self.registry.device_at(parsed.park, parsed.enterprise, parsed.device)
        if ref is None:
            self._count(Reason.UNKNOWN_DEVICE)
            return
        try:
            msg = decode_telemetry(payload if isinstance(payload, bytes) else bytes(payload))
        except CodecError as exc:
            self._count(exc.reason)  # ingest dead-letters it; analytics only skips it
            return
        except TypeError:
            self._count(Reason.SCHEMA)
            return
        d = self.index.position[ref.device.id]
        pending = self._pending
        for point in msg.points:
            for name, value in point.fields.items():
                pending.device.append(d)
                pending.ts.append(point.ts)
                pending.field.append(FIELD_CODES.get(name, F_OTHER))
                pending.value.append(value)
        self._count("ok")

    def _count(self, result: str) -> None:
        self.stats[str(result)] += 1
        MESSAGES.labels(result=str(result)).inc()

    def fold(self) -> None:
        """Fold the pending values into the streaming state."""
        n = len(self._pending)
        if n:
            self.state.update(*self._pending.take(), now_ms=now_ms())
            POINTS.inc(n)

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
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


async def run(settings: Settings, registry: Registry, factors: Factors | None = None) -> None:
    """Run the service until cancelled (the CLI's main)."""
    async with AnalyticsService(settings, registry, factors=factors):
        await asyncio.Event().wait()
