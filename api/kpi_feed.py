"""Live park KPIs from MQTT (`sp/v1/+/kpi`): a cache of the latest message per park and a fan-out to
WebSocket clients; alerts (`sp/v1/+/+/alerts`) and safety events (`sp/v1/+/safety`) are fanned out too.

The feed is an async context manager holding one named task that keeps an aiomqtt client connected,
reconnecting with jittered exponential backoff, so the API serves while the broker is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import aiomqtt
import orjson

from api.metrics import ApiMetrics
from parkmodel.ids import is_valid_id
from parkmodel.topics import KPI_SUBSCRIPTION, ROOT
from smartpark.config import MqttSettings
from smartpark.mqtt import mqtt_client_kwargs

ALERTS_SUBSCRIPTION = f"{ROOT}/+/+/alerts"
SAFETY_SUBSCRIPTION = f"{ROOT}/+/safety"

log = logging.getLogger(__name__)

QUEUE_SIZE = 256


@dataclass(frozen=True, slots=True)
class KpiFrame:
    """One message of one park, as received: `kind` "kpi" (data = the KPI message) or "alert"/"safety"
    (data = {"v", "event", "alert"})."""

    park: str
    data: dict[str, Any]
    kind: str = "kpi"


class Backoff:
    """Jittered exponential backoff (full jitter), like aiomqtt's reconnect loop.

    Args:
        initial_s: first upper bound.
        maximum_s: cap on the upper bound.
    """

    def __init__(self, initial_s: float = 0.5, maximum_s: float = 30.0) -> None:
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self._attempt = 0

    def reset(self) -> None:
        self._attempt = 0

    def next_delay(self) -> float:
        bound = min(self.maximum_s, self.initial_s * 2 ** self._attempt)
        self._attempt += 1
        return random.uniform(bound / 2, bound)


def parse_kpi_message(topic: str, payload: bytes, known_park: Callable[[str], bool]) -> KpiFrame | None:
    """A frame from a `sp/v1/{park}/kpi` message, or None when topic or payload is not one.

    Args:
        topic: the MQTT topic.
        payload: the raw payload (JSON object with a `kpi` object).
        known_park: whether a park id is in the registry.
    """
    parts = topic.split("/")
    if len(parts) != 4 or f"{parts[0]}/{parts[1]}" != ROOT or parts[3] != "kpi":
        return None
    park = parts[2]
    if not is_valid_id(park) or not known_park(park):
        return None
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("kpi"), dict):
        return None
    if data.get("park", park) != park:
        return None
    return KpiFrame(park, data)


def parse_alert_message(topic: str, payload: bytes, known_park: Callable[[str], bool]) -> KpiFrame | None:
    """A frame from `sp/v1/{park}/{enterprise}/alerts` or `sp/v1/{park}/safety`, or None.

    Args:
        topic: the MQTT topic.
        payload: JSON {"v":1,"event":...,"alert":{...}}.
        known_park: whether a park id is in the registry.
    """
    parts = topic.split("/")
    if len(parts) < 4 or f"{parts[0]}/{parts[1]}" != ROOT:
        return None
    if len(parts) == 4 and parts[3] == "safety":
        kind = "safety"
    elif len(parts) == 5 and parts[4] == "alerts" and is_valid_id(parts[3]):
        kind = "alert"
    else:
        return None
    park = parts[2]
    if not is_valid_id(park) or not known_park(park):
        return None
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    alert = data.get("alert") if isinstance(data, dict) else None
    if not isinstance(alert, dict) or not isinstance(data.get("event"), str) or alert.get("park", park) != park:
        return None
    if kind == "alert" and alert.get("enterprise") != parts[3]:
        return None  # an enterprise's alert topic carries only that enterprise's alerts
    return KpiFrame(park, data, kind)


class KpiFeed:
    """Latest KPI per park plus live fan-out; `async with` starts and stops the MQTT task.

    Args:
        settings: broker address and credentials.
        known_park: whether a park id is in the registry (messages of other parks are dropped).
        metrics: where to count messages and connection state.
    """

    def __init__(self, settings: MqttSettings, known_park: Callable[[str], bool], metrics: ApiMetrics) -> None:
        self._settings = settings
        self._known_park = known_park
        self._metrics = metrics
        self._latest: dict[str, KpiFrame] = {}
        self._subscribers: set[asyncio.Queue[KpiFrame]] = set()
        self._connected = False
        self._last_error = "not connected yet"
        self._task_group: asyncio.TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None
        self.backoff = Backoff()

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def last_error(self) -> str:
        return self._last_error

    def latest(self, park: str) -> KpiFrame | None:
        return self._latest.get(park)

    def snapshot(self) -> list[KpiFrame]:
        return list(self._latest.values())

    async def __aenter__(self) -> Self:
        self._task_group = asyncio.TaskGroup()
        await self._task_group.__aenter__()
        self._task = self._task_group.create_task(self._run(), name="api-kpi-feed")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._task_group is not None and self._task is not None
        self._task.cancel()
        await self._task_group.__aexit__(None, None, None)
        self._task_group = None

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[KpiFrame]]:
        """A queue receiving every frame from now on; when a slow client lets it fill, the oldest is dropped."""
        queue: asyncio.Queue[KpiFrame] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def publish_local(self, frame: KpiFrame) -> None:
        """Cache a KPI frame and hand any frame to every subscriber."""
        if frame.kind == "kpi":
            self._latest[frame.park] = frame
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(frame)

    def _handle(self, topic: str, payload: bytes) -> None:
        if topic.endswith("/kpi"):
            frame = parse_kpi_message(topic, payload, self._known_park)
        else:
            frame = parse_alert_message(topic, payload, self._known_park)
        if frame is None:
            self._metrics.kpi_messages.labels("invalid").inc()
            log.debug("ignored kpi message on %s", topic)
            return
        self._metrics.kpi_messages.labels("ok").inc()
        self.publish_local(frame)

    def _client(self) -> aiomqtt.Client:
        s = self._settings
        return aiomqtt.Client(
            s.host, s.port, identifier=f"smartpark-api-{uuid.uuid4().hex[:8]}", keepalive=s.keepalive_s, timeout=10,
            **mqtt_client_kwargs(s),
        )

    async def _run(self) -> None:
        while True:
            try:
                async with self._client() as client:
                    await client.subscribe([(KPI_SUBSCRIPTION, 0), (ALERTS_SUBSCRIPTION, 1), (SAFETY_SUBSCRIPTION, 1)])
                    self._set_connected(True, "")
                    self.backoff.reset()
                    log.info("kpi feed connected to %s:%s", self._settings.host, self._settings.port)
                    async for message in client.messages:
                        self._handle(str(message.topic), bytes(message.payload))  # type: ignore[arg-type]
            except aiomqtt.MqttError as exc:
                self._metrics.mqtt_reconnects.inc()
                self._set_connected(False, str(exc) or type(exc).__name__)
            delay = self.backoff.next_delay()
            log.warning("kpi feed: broker %s:%s unavailable (%s); retrying in %.1f s",
                        self._settings.host, self._settings.port, self._last_error, delay)
            await asyncio.sleep(delay)

    def _set_connected(self, connected: bool, error: str) -> None:
        self._connected = connected
        self._last_error = error
        self._metrics.mqtt_connected.set(1 if connected else 0)
