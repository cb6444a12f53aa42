"""`SimulatedPark`: every device of (part of) a registry as Modbus TCP servers, ticking in real or fast time."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import zlib
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from edge_agent.registermap import load_template
from parkmodel.registry import Enterprise, Park, Registry
from simulators.control import ControlServer, UnknownDeviceError
from simulators.faults import FaultError, FaultKind, check_applies, parse_fault
from simulators.model import DeviceSim, EnterpriseSim, device_rng
from simulators.profiles import BEIJING
from simulators.server import GatewayServer
from simulators.weather import Weather

log = logging.getLogger(__name__)

MAX_SPEED = 100_000.0


@dataclass(frozen=True, slots=True)
class DeviceAddress:
    """Where a simulated device answers."""

    device: str
    park: str
    enterprise: str
    gateway: str
    role: str
    template: str
    host: str
    port: int
    unit_id: int


class SimClock:
    """Simulated time: starts at `start` (epoch seconds, default now) and runs `speed` times real time.

    Args:
        speed: simulated seconds per real second.
        start: simulated epoch seconds at creation.
    """

    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        if not (math.isfinite(speed) and 0 < speed <= MAX_SPEED):
            raise ValueError(f"speed is {speed!r}: expected a number > 0 and <= {MAX_SPEED:g}")
        self.speed = speed
        self._real0 = time.monotonic()
        self._sim0 = time.time() if start is None else start

    def now(self) -> float:
        return self._sim0 + (time.monotonic() - self._real0) * self.speed


def _select(registry: Registry, parks: Iterable[str] | None,
            enterprises: Iterable[str] | None) -> list[tuple[Park, Enterprise]]:
    park_ids = list(parks or [])
    ent_ids = list(enterprises or [])
    for p in park_ids:
        if registry.park(p) is None:
            raise ValueError(f"unknown park {p!r}; parks: {', '.join(x.id for x in registry.parks)}")
    for e in ent_ids:
        if registry.enterprise(e) is None:
            known = ", ".join(x.id for p in registry.parks for x in p.enterprises)
            raise ValueError(f"unknown enterprise {e!r}; enterprises: {known}")
    everything = not park_ids and not ent_ids
    return [(p, e) for p in registry.parks for e in p.enterprises
            if everything or p.id in park_ids or e.id in ent_ids]


class SimulatedPark:
    """Modbus TCP servers that behave like the devices of a registry, with injectable faults.

    One server per gateway; a device answers at unit id = its 1-based index in its gateway's device list,
    with the registers of its template. Use as an async context manager.

    Args:
        registry: the park registry.
        host: address the servers listen on.
        ports: port per gateway id (every selected gateway needs one).
        base_port: gateway n (0-based, registry order of the selected gateways) listens on base_port + n.
            With neither `ports` nor `base_port`, each gateway gets a free port (see `address_of`).
        speed: simulated seconds per real second (60 = one simulated minute per second).
        seed: seed of every random walk (same seed, same start: same park).
        control_port: port of the HTTP control channel (None = no control channel, 0 = a free port).
        parks: simulate only these parks (with `enterprises`: their union).
        enterprises: simulate only these enterprises.
        start: simulated start time (aware datetime or epoch seconds); default now.
        tick_s: real seconds between register updates.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        host: str = "127.0.0.1",
        ports: Mapping[str, int] | None = None,
        base_port: int | None = None,
        speed: float = 1.0,
        seed: int = 0,
        control_port: int | None = None,
        parks: Iterable[str] | None = None,
        enterprises: Iterable[str] | None = None,
        start: datetime | float | None = None,
        tick_s: float = 0.5,
    ) -> None:
        if not 0.01 <= tick_s <= 60:
            raise ValueError(f"tick_s is {tick_s!r}: expected 0.01 .. 60 seconds")
        if ports is not None and base_port is not None:
            raise ValueError("give either ports or base_port, not both")
        start_ts = start.timestamp() if isinstance(start, datetime) else start
        self.clock = SimClock(speed, start_ts)
        self.host = host
        self.tick_s = tick_s
        self.ticks = 0
        self._control_port = control_port
        self.control: ControlServer | None = None
        self.devices: dict[str, DeviceSim] = {}
        self.enterprises: list[EnterpriseSim] = []
        self.weather: dict[str, Weather] = {}
        self._ent_park: list[str] = []
        self.servers: dict[str, GatewayServer] = {}
        selected = _select(registry, parks, enterprises)
        if not selected:
            raise ValueError("nothing to simulate: the selection holds no enterprise")
        gateway_index = 0
        for park, ent in selected:
            if park.id not in self.weather:
                self.weather[park.id] = Weather(random.Random(seed * 7919 + zlib.crc32(park.id.encode())))
            ent_devices: list[DeviceSim] = []
            for gw in ent.gateways:
                gw_devices = []
                for unit_id, dev in enumerate(gw.devices, start=1):
                    ref = registry.device(dev.id)
                    assert ref is not None
                    sim = DeviceSim(ref, load_template(dev.template), unit_id, device_rng(seed, dev.id))
                    gw_devices.append(sim)
                    self.devices[dev.id] = sim
                if ports is not None:
                    if gw.id not in ports:
                        raise ValueError(f"ports: no port for gateway {gw.id!r}")
                    port = ports[gw.id]
                else:
                    port = 0 if base_port is None else base_port + gateway_index
                gateway_index += 1
                self.servers[gw.id] = GatewayServer(gw.id, gw_devices, host, port)
                ent_devices.extend(gw_devices)
            self.enterprises.append(EnterpriseSim(ent, ent_devices))
            self._ent_park.append(park.id)
        self._last_ts = self.clock.now()
        self._tick_event = asyncio.Event()
        self._pauses = 0
        self._tg: asyncio.TaskGroup | None = None
        self._tick_task: asyncio.Task[None] | None = None
        self._tick(0.0)

    # -- lifecycle -----------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        started: list[GatewayServer] = []
        try:
            for server in self.servers.values():
                await server.start()
                started.append(server)
            if self._control_port is not None:
                self.control = ControlServer(self, self.host if self.host != "0.0.0.0" else "127.0.0.1",
                                             self._control_port)
                await self.control.start()
        except BaseException:
            for server in started:
                await server.stop()
            raise
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._tick_task = self._tg.create_task(self._tick_loop(), name="simulator-ticks")
        log.info("simulating %d devices on %d gateways at speed %g", len(self.devices), len(self.servers),
                 self.clock.speed)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._tick_task is not None:
            self._tick_task.cancel()
        if self._tg is not None:
            await self._tg.__aexit__(None, None, None)
            self._tg = None
        if self.control is not None:
            await self.control.stop()
        for server in self.servers.values():
            await server.stop()

    async def run_forever(self) -> None:
        """Serve until cancelled."""
        await asyncio.Event().wait()

    # -- time ----------------------------------------------------------------------------------------------------

    def now(self) -> float:
        """Simulated epoch seconds."""
        return self.clock.now()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            if self._pauses:
                continue
            now = self.clock.now()
            self._tick(max(0.0, now - self._last_ts) / 3600, now)

    def _tick(self, dt_h: float, now: float | None = None) -> None:
        ts = self._last_ts if now is None else now
        self._last_ts = ts
        for weather in self.weather.values():
            weather.step(ts, dt_h)
        for park_id, ent in zip(self._ent_park, self.enterprises, strict=True):
            ent.step(ts, dt_h, self.weather[park_id])
        for d in self.devices.values():
            d.publish()
        self.ticks += 1
        self._tick_event.set()
        self._tick_event = asyncio.Event()

    async def next_tick(self) -> None:
        """Wait until the registers have been updated once more."""
        await self._tick_event.wait()

    @asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Hold the registers still (no tick) inside the block, e.g. to read a consistent snapshot."""
        self._pauses += 1
        try:
            yield
        finally:
            self._pauses -= 1

    # -- faults and pinned values --------------------------------------------------------------------------------

    def _device(self, device: str) -> DeviceSim:
        try:
            return self.devices[device]
        except KeyError:
            raise UnknownDeviceError(
                f"unknown device {device!r}: not simulated here ({len(self.devices)} devices; see GET /state)"
            ) from None

    def set_point(self, device: str, point: str, value: float) -> None:
        """Pin `point` of `device` to `value` (engineering units) until `clear`.

        Args:
            device: device id.
            point: a point of the device's template.
            value: the value its registers will encode (finite).

        Raises:
            UnknownDeviceError: the device is not simulated here.
            FaultError: the template has no such point, or the value is not a finite number.
        """
        d = self._device(device)
        if point not in d.point_names:
            raise FaultError(f"device {device!r} (template {d.template.name!r}) has no point {point!r}; "
                             f"its points: {', '.join(sorted(d.point_names))}")
        if isinstance(value, str) or not math.isfinite(float(value)):
            raise FaultError(f"value {value!r} for {device}.{point}: expected a finite number")
        d.faults.pinned[point] = float(value)
        d.publish()

    def inject(self, device: str, fault: str | FaultKind) -> None:
        """Inject fault or event `fault` into `device` (`clear` removes all faults and pinned values).

        Args:
            device: device id.
            fault: one of timeout, exception, counter_reset, gas_leak, fire, garbage, clear.

        Raises:
            UnknownDeviceError: the device is not simulated here.
            FaultError: unknown fault, or one that does not apply to the device.
        """
        d = self._device(device)
        kind = parse_fault(fault)
        if kind is FaultKind.CLEAR:
            self.clear(device)
            return
        check_applies(kind, device, d.template)
        f = d.faults
        if kind is FaultKind.TIMEOUT:
            f.timeout = True
        elif kind is FaultKind.EXCEPTION:
            f.exception = True
        elif kind is FaultKind.GARBAGE:
            f.garbage = True
        elif kind is FaultKind.FIRE:
            f.fire = True
            d.values["smoke_alarm"] = 1.0
        elif kind is FaultKind.GAS_LEAK:
            if f.gas_leak_since is None:
                f.gas_leak_since = self.clock.now()
        elif kind is FaultKind.COUNTER_RESET:
            d.reset_counters()
        log.info("device %s: fault %s", device, kind.value)
        d.publish()

    def clear(self, device: str) -> None:
        """Remove every fault and pinned value of `device` (a counter reset stays: the meter was replaced).

        Args:
            device: device id.
        """
        d = self._device(device)
        d.faults.clear()
        if "smoke_alarm" in d.point_names:
            d.values["smoke_alarm"] = 0.0
        d.publish()

    # -- where and what ------------------------------------------------------------------------------------------

    def address_of(self, device: str) -> tuple[str, int, int]:
        """(host, port, unit_id) at which `device` answers (port known once the park has started)."""
        d = self._device(device)
        return self.host, self.servers[d.ref.gateway.id].port, d.unit_id

    def layout(self) -> list[DeviceAddress]:
        """Every simulated device with its address, in registry order."""
        out = []
        for d in self.devices.values():
            r = d.ref
            out.append(DeviceAddress(d.id, r.park.id, r.enterprise.id, r.gateway.id, r.device.role.value,
                                     r.device.template, self.host, self.servers[r.gateway.id].port, d.unit_id))
        return out

    def layout_dict(self) -> dict[str, Any]:
        """The layout as plain data (written as YAML by the CLI, served at GET /layout)."""
        return {
            "control": self.control.url if self.control else None,
            "devices": {a.device: {k: v for k, v in asdict(a).items() if k != "device"} for a in self.layout()},
        }

    def state(self) -> dict[str, Any]:
        """Simulated time, and per device its address, faults, pinned and current values."""
        now = self.clock.now()
        devices: dict[str, Any] = {}
        for a in self.layout():
            d = self.devices[a.device]
            values = {**d.values, **d.counters}
            devices[a.device] = {
                "park": a.park, "enterprise": a.enterprise, "gateway": a.gateway, "role": a.role,
                "template": a.template, "host": a.host, "port": a.port, "unit_id": a.unit_id,
                "faults": d.faults.active(), "pinned": dict(d.faults.pinned),
                "values": {k: round(v, 4) for k, v in values.items() if k in d.point_names},
            }
        return {
            "sim_time": datetime.fromtimestamp(now, BEIJING).isoformat(timespec="seconds"),
            "sim_ts": now, "speed": self.clock.speed, "ticks": self.ticks, "devices": devices,
        }
