"""The edge agent of one gateway: device coordinators -> store-and-forward queue -> MQTT publisher.

    async with EdgeAgent(config) as agent:
        ...                      # polling and publishing run in the background
    await run_agent(config)      # the same, until cancelled

Set-up and tear-down mirror each other: `__aenter__` opens the store, the Modbus links, the publisher
and starts one named task per link (a `LinkScheduler` polling the devices behind it); `__aexit__` stops
the pollers, says "offline", disconnects, closes the links and the store. Readings are on disk before
anything is published (committed in groups every `_COMMIT_EVERY_S`), so a stop at any moment loses
nothing, and a crash at most the readings of the last few milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType
from typing import Any, Self

from edge_agent.config import GatewayConfig
from edge_agent.metrics import STORE_DEPTH, STORE_DROPPED
from edge_agent.poller import DeviceCoordinator, DeviceHealth, LinkScheduler, Reading
from edge_agent.publisher import MqttPublisher
from edge_agent.store import Kind, ReadingStore
from edge_agent.transport import ModbusLink, make_link
from parkmodel.codec import CONTRACT_VERSION, DeviceStatus, GatewayStatus

__all__ = ["EdgeAgent", "run_agent"]

log = logging.getLogger(__name__)

#: Readings are committed to the store at most this often (group commit): at most this much later on disk.
_COMMIT_EVERY_S = 0.005


class EdgeAgent:
    """Polls the devices of one gateway and publishes their readings (contract v1).

    Args:
        config: the validated gateway config.
    """

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.store: ReadingStore | None = None
        self.publisher: MqttPublisher | None = None
        self.links: dict[tuple[str, str], ModbusLink] = {}
        self.coordinators: dict[str, DeviceCoordinator] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._pending_rows: list[tuple[str, Kind, int, dict[str, Any]]] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self._last_flush = 0.0
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def _start(self) -> None:
        cfg = self.config
        store = ReadingStore(cfg.store.path, cfg.store.max_rows)
        self.store = store
        self._stack.callback(store.close)
        self._stack.callback(self.flush)  # runs before the store closes: queued readings reach the disk
        self._dropped_seen = store.dropped
        timeouts: dict[tuple[str, str], float] = {}
        for d in cfg.devices:
            key = d.transport.link_key
            timeouts[key] = max(timeouts.get(key, 0.0), d.timeout_s)
        for d in cfg.devices:
            key = d.transport.link_key
            if key not in self.links:
                self.links[key] = make_link(d.transport, timeouts[key])
                self._stack.callback(self.links[key].close)
            self.coordinators[d.id] = DeviceCoordinator(d, d.template_map, self.links[key], self)
        self.publisher = await self._stack.enter_async_context(MqttPublisher(cfg, store, self.status))
        by_link: dict[tuple[str, str], list[DeviceCoordinator]] = {}
        for d in cfg.devices:
            by_link.setdefault(d.transport.link_key, []).append(self.coordinators[d.id])
        for key, coordinators in by_link.items():
            scheduler = LinkScheduler(coordinators)
            self._tasks.append(asyncio.create_task(scheduler.run(), name=f"poll-{self.links[key].name}"))
        self._stack.push_async_callback(self._stop_pollers)
        log.info("edge agent started", extra={"gateway": cfg.gateway, "devices": len(cfg.devices)})

    async def _stop_pollers(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._stack.aclose()
        log.info("edge agent stopped", extra={"gateway": self.config.gateway})

    # ReadingSink -----------------------------------------------------------------------------------
    def on_reading(self, reading: Reading) -> None:
        """Queue the reading (and its events) for the disk; the publisher is woken once they are on it.

        Readings are written in one transaction per `_COMMIT_EVERY_S` at most (`flush`, scheduled on the
        loop): a commit per reading was the agent's largest cost at a thousand devices, and still a tenth of
        it with a commit per event-loop iteration. Nothing is published before it is on disk, and stopping
        the agent flushes first.
        """
        pending = self._pending_rows
        for event in reading.events:
            pending.append((reading.device, Kind.EVENT, reading.ts_ms,
                            {"type": event.point, "state": event.state, "input": event.address}))
        if reading.fields:
            pending.append((reading.device, Kind.TELEMETRY, reading.ts_ms, reading.fields))
        if pending and self._flush_timer is None:
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_at(max(loop.time(), self._last_flush + _COMMIT_EVERY_S), self.flush)

    def flush(self) -> None:
        """Write the readings queued since the last flush in one transaction, then wake the publisher."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()  # when called directly (shutdown)
            self._flush_timer = None
        store = self.store
        if store is None or not self._pending_rows:
            return
        with contextlib.suppress(RuntimeError):  # also called at shutdown, possibly with no loop running
            self._last_flush = asyncio.get_running_loop().time()
        rows, self._pending_rows = self._pending_rows, []
        items = store.append_many(rows)
        if store.dropped != self._dropped_seen:
            STORE_DROPPED.labels(self.config.gateway).inc(store.dropped - self._dropped_seen)
            self._dropped_seen = store.dropped
        STORE_DEPTH.labels(self.config.gateway).set(store.depth)
        if self.publisher is not None:
            self.publisher.offer(items)

    def on_health(self, device: str, health: DeviceHealth) -> None:
        if self.publisher is not None:
            self.publisher.status_changed()

    # Introspection ---------------------------------------------------------------------------------
    def status(self) -> GatewayStatus:
        """The gateway status as published (retained) on the status topic."""
        devices = {
            device_id: DeviceStatus(online=c.health.online, last_ok_ts=c.health.last_ok_ts, error=c.health.error)
            for device_id, c in self.coordinators.items()
        }
        return GatewayStatus(v=CONTRACT_VERSION, state="online", ts=time.time_ns() // 1_000_000, devices=devices)

    @property
    def store_depth(self) -> int:
        return self.store.depth if self.store is not None else 0


async def run_agent(config: GatewayConfig) -> None:
    """Run the agent until cancelled (Ctrl-C, SIGTERM via the CLI, or a test's task.cancel()).

    Args:
        config: the validated gateway config.
    """
    async with EdgeAgent(config):
        await asyncio.Event().wait()
