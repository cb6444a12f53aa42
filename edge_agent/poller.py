"""Per-device coordinators: each owns its device's schedule, reads, decoding, range checks and health.

Like Home Assistant's DataUpdateCoordinator, one coordinator per polled device turns library errors into
a typed health state; the agent only consumes its readings and health. Coordinators never raise out of
`run()`, so one bad device never stalls the others; those sharing a bus share only the bus' time, and a
silent one costs it a single short timeout per (backed-off) attempt.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import sys
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from edge_agent.backoff import Backoff
from edge_agent.config import DeviceConfig
from edge_agent.metrics import FLAGGED, POLLS
from edge_agent.registermap import PointMap, ReadBlock, Template, compile_block
from edge_agent.transport import ModbusLink, ModbusReadError
from parkmodel.points import POINTS

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeEvent:
    """A discrete input of an `event_on_change` point that changed (or was first seen active)."""

    point: str
    state: int
    address: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """One successful poll: the values fit to publish, and what they flagged."""

    device: str
    ts_ms: int
    fields: dict[str, float]
    flagged: dict[str, float] = field(default_factory=dict)
    events: tuple[ChangeEvent, ...] = ()


@dataclass(slots=True)
class DeviceHealth:
    online: bool = False
    last_ok_ts: int | None = None
    error: str = "not polled yet"
    polls_ok: int = 0
    polls_failed: int = 0
    flagged: int = 0


class ReadingSink(Protocol):
    def on_reading(self, reading: Reading) -> None:
        """A poll succeeded (called even when every value was flagged: `fields` is then empty)."""

    def on_health(self, device: str, health: DeviceHealth) -> None:
        """The device went online or offline, or its error changed."""


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def out_of_range(point: PointMap, value: float) -> str | None:
    """Why `value` is not fit to publish as `point`, or None if it is."""
    if not math.isfinite(value):
        return "not a finite number"
    low = point.low if point.low is not None else -math.inf
    high = point.high if point.high is not None else math.inf
    if not low <= value <= high:
        return f"outside the declared range {point.low}..{point.high}"
    spec = POINTS[point.point]
    if not spec.low <= value <= spec.high:
        return f"outside the plausible range {spec.low}..{spec.high} {spec.unit}"
    return None


def _fit_bounds(point: PointMap) -> tuple[float, float]:
    """The closed range of values `out_of_range` accepts for `point`, as finite numbers."""
    spec = POINTS[point.point]
    low = max(spec.low, point.low if point.low is not None else -math.inf, -sys.float_info.max)
    high = min(spec.high, point.high if point.high is not None else math.inf, sys.float_info.max)
    return low, high


class DeviceCoordinator:
    """Polls one device on its own drift-free schedule.

    Args:
        device: the device's config.
        template: its register map.
        link: the (possibly shared) Modbus connection it sits behind.
        sink: receives readings and health changes.
        wall_ms: wall clock in epoch ms (reading timestamps).
    """

    def __init__(self, device: DeviceConfig, template: Template, link: ModbusLink, sink: ReadingSink, *,
                 wall_ms: Callable[[], int] = _wall_ms) -> None:
        self.device = device
        self.template = template
        self.blocks: list[ReadBlock] = template.blocks()
        self._decoders = [(block, compile_block(block, template)) for block in self.blocks]
        self._by_name = {p.point: p for p in template.points}
        # Values inside both the declared and the plausible range (and finite) pass without further checks.
        self._bounds = {p.point: _fit_bounds(p) for p in template.points}
        self.link = link
        self.sink = sink
        self.health = DeviceHealth()
        self._wall_ms = wall_ms
        self._offline_backoff = Backoff(base=device.interval_s, cap=max(device.max_backoff_s, device.interval_s))
        self._event_points = {p.point: p for p in template.points if p.event_on_change}
        self._last_state: dict[str, int] = {}
        # Seconds each recent poll started after its slot (event-loop load shows here first).
        self.lateness: deque[float] = deque(maxlen=4096)
        self._polls_ok = POLLS.labels(device.id, "ok")  # resolved once: a label lookup per poll adds up
        self._grid = 0.0

    def first_slot(self, now: float) -> float:
        """Start the schedule at loop time `now`: the first poll is due at once, the later ones on this device's
        own phase of the grid `phase + k * interval`, so timing errors never accumulate."""
        interval = self.device.interval_s
        # Devices started together would otherwise all wake in the same instant every interval: 1,000 timers
        # firing at once delayed the last poller by ~100 ms. A stable per-device phase spreads them evenly.
        self._grid = now + zlib.crc32(self.device.id.encode()) / 2**32 * interval
        return now

    def next_slot(self, ok: bool, now: float) -> float:
        """When the next poll is due, after one that ended at loop time `now` (`ok`: it succeeded)."""
        interval = self.device.interval_s
        earliest = now if ok else now + self._offline_backoff.next_delay()
        if ok:
            self._offline_backoff.reset()
        # The first slot of the grid not before `earliest` (missed slots are skipped, not bunched).
        return self._grid + math.ceil((earliest - self._grid) / interval + 1e-9) * interval

    async def run(self) -> None:
        """Poll this device alone until cancelled (the agent drives devices per link: `LinkScheduler`)."""
        await LinkScheduler([self]).run()

    async def poll_cycle(self) -> Reading | None:
        """Read every block once (with retries while online); report the reading or the failure."""
        ts = self._wall_ms()
        values: dict[str, float] = {}
        try:
            for block, decode in self._decoders:
                registers = await self._read(block)
                values.update(decode(registers))
        except ModbusReadError as exc:
            self._failed(str(exc), exc.kind)
            return None
        except Exception as exc:  # a decoding or library bug must not kill the coordinator
            log.exception("poll failed", extra={"device": self.device.id})
            self._failed(f"internal error: {exc!r}", "internal")
            return None
        reading = self._reading(ts, values)
        self._succeeded(reading.ts_ms)
        self.sink.on_reading(reading)
        return reading

    async def _read(self, block: ReadBlock) -> list[int]:
        attempts = 1 + (self.device.retries if self.health.online else 0)
        backoff: Backoff | None = None  # built only on a retry: the happy path allocates nothing
        for attempt in range(attempts):
            try:
                return await self.link.read(block.function, block.address, block.count,
                                            self.device.transport.unit_id, self.device.timeout_s)
            except ModbusReadError:
                if attempt + 1 >= attempts:
                    raise
                backoff = backoff or Backoff(base=min(0.05, self.device.timeout_s), cap=self.device.timeout_s)
                await asyncio.sleep(backoff.next_delay())
        raise AssertionError("unreachable")

    def _reading(self, ts: int, values: dict[str, float]) -> Reading:
        fields: dict[str, float] = {}
        flagged: dict[str, float] = {}
        bounds = self._bounds
        for name, value in values.items():
            low, high = bounds[name]
            if low <= value <= high:
                fields[name] = value
                continue
            why = out_of_range(self._by_name[name], value)
            if why is None:
                fields[name] = value
                continue
            flagged[name] = value
            self.health.flagged += 1
            FLAGGED.labels(self.device.id, name).inc()
            log.warning("value flagged, not published: %s=%r %s", name, value, why,
                        extra={"device": self.device.id, "point": name})
        events = []
        for name, p in self._event_points.items():
            if name not in fields:
                continue
            state = int(fields[name])
            previous = self._last_state.get(name)
            if (previous is None and state) or (previous is not None and state != previous):
                events.append(ChangeEvent(point=name, state=state, address=p.address))
            self._last_state[name] = state
        return Reading(device=self.device.id, ts_ms=ts, fields=fields, flagged=flagged, events=tuple(events))

    def _succeeded(self, ts: int) -> None:
        self._polls_ok.inc()
        h = self.health
        changed = not h.online or h.error != ""
        h.online, h.last_ok_ts, h.error = True, ts, ""
        h.polls_ok += 1
        if changed:
            log.info("device online", extra={"device": self.device.id})
            self.sink.on_health(self.device.id, h)

    def _failed(self, error: str, kind: str) -> None:
        POLLS.labels(self.device.id, kind).inc()
        h = self.health
        changed = h.online or h.error != error
        h.online, h.error = False, error
        h.polls_failed += 1
        if changed:
            log.warning("device offline: %s", error, extra={"device": self.device.id})
            self.sink.on_health(self.device.id, h)


class LinkScheduler:
    """Drives the devices that share one link: one task per link, polling whichever device is due next.

    A link serialises its requests anyway, so one task per device only added a timer, a task switch and a
    lock hand-over to every poll (a large share of the agent at a thousand devices); here a device that is
    due waits for the poll in progress, exactly as it waited for the link's lock before. A device that does
    not answer still costs the link only its own timeout, and its backoff only its own slots.

    Args:
        coordinators: the devices behind one link.
    """

    def __init__(self, coordinators: list[DeviceCoordinator]) -> None:
        self.coordinators = coordinators

    async def run(self) -> None:
        """Poll until cancelled."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        now = loop.time()
        # (due, position, coordinator): the position breaks ties in a stable order.
        due = [(c.first_slot(now), i, c) for i, c in enumerate(self.coordinators)]
        heapq.heapify(due)
        while True:
            at, i, c = due[0]
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            c.lateness.append(loop.time() - at)
            ok = await c.poll_cycle() is not None
            if task is not None and task.cancelling():
                # pymodbus can swallow a CancelledError that lands inside a request; without this check
                # the scheduler would carry on and the agent's shutdown (gather of pollers) would hang.
                raise asyncio.CancelledError
            heapq.heapreplace(due, (c.next_slot(ok, loop.time()), i, c))
