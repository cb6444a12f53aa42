"""Modbus links: one connection (TCP socket or serial line) shared by every device behind it.

A Modbus TCP gateway serves many unit ids over one socket and a serial bus carries one frame at a
time, so each link serialises its requests with a lock; on a serial bus (RTU, or RTU framed over a
TCP serial server) it also keeps the configured silence between frames. Each request carries its own
timeout (the device's), so a dead slave costs the bus only its short timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from edge_agent.backoff import Backoff
from edge_agent.config import TransportConfig, TransportKind
from edge_agent.registermap import Function

log = logging.getLogger(__name__)

# After this many timeouts in a row with no answer from any unit, the TCP connection is re-opened.
_TIMEOUTS_BEFORE_RECONNECT = 3


class ModbusReadError(Exception):
    """A read failed; `kind` is timeout, exception, connect or protocol; the message says why."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Client(Protocol):
    @property
    def connected(self) -> bool: ...
    async def connect(self) -> bool: ...
    def close(self) -> None: ...
    async def read_coils(self, address: int, *, count: int = 1, device_id: int = 1) -> ModbusPDU: ...
    async def read_discrete_inputs(self, address: int, *, count: int = 1, device_id: int = 1) -> ModbusPDU: ...
    async def read_holding_registers(self, address: int, *, count: int = 1, device_id: int = 1) -> ModbusPDU: ...
    async def read_input_registers(self, address: int, *, count: int = 1, device_id: int = 1) -> ModbusPDU: ...


def make_client(transport: TransportConfig, timeout_s: float) -> _Client:
    """The pymodbus client for a transport; pymodbus' own retries and reconnects are off (we own them)."""
    common = {"timeout": timeout_s, "retries": 0, "reconnect_delay": 0, "name": transport.bus_name}
    if transport.kind is TransportKind.RTU:
        return AsyncModbusSerialClient(  # type: ignore[return-value]
            str(transport.serial_port), framer=FramerType.RTU, baudrate=transport.baudrate,
            parity=transport.parity, stopbits=transport.stopbits, **common,
        )
    framer = FramerType.RTU if transport.kind is TransportKind.RTU_OVER_TCP else FramerType.SOCKET
    return AsyncModbusTcpClient(str(transport.host), port=transport.port, framer=framer, **common)  # type: ignore[return-value]


class ModbusLink:
    """One shared connection with serialised requests.

    Args:
        name: for logs (bus name or host:port).
        client_factory: builds a fresh pymodbus client.
        serial: True for a serial bus (RTU framing), where the inter-frame delay applies.
        inter_frame_delay_s: silence kept between the end of one exchange and the next request.
        connect_timeout_s: how long a connection attempt may take.
    """

    def __init__(self, name: str, client_factory: Callable[[], _Client], *, serial: bool,
                 inter_frame_delay_s: float = 0.0, connect_timeout_s: float = 3.0) -> None:
        self.name = name
        self._factory = client_factory
        self._serial = serial
        self._gap = inter_frame_delay_s
        self._connect_timeout = connect_timeout_s
        self._client: _Client | None = None
        self._lock = asyncio.Lock()
        self._last_frame_end = 0.0
        self._connect_backoff = Backoff(base=0.2, cap=30.0)
        self._next_connect_at = 0.0
        self._timeouts_in_row = 0
        self.requests = 0

    async def read(self, function: Function, address: int, count: int, unit: int, timeout_s: float) -> list[int]:
        """Read `count` registers (or bits, as 0/1) from `unit`.

        Raises:
            ModbusReadError: timeout, Modbus exception response, or no connection.
        """
        loop = asyncio.get_running_loop()
        async with self._lock:
            client = await self._connected_client()
            wait = self._last_frame_end + self._gap - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.requests += 1
            try:
                async with asyncio.timeout(timeout_s):
                    response = await self._request(client, function, address, count, unit)
            except TimeoutError:
                self._on_timeout()
                raise ModbusReadError("timeout", f"no answer from unit {unit} on {self.name} within {timeout_s:g} s") from None
            except ModbusException as exc:
                self._drop_client()
                raise ModbusReadError("protocol", f"unit {unit} on {self.name}: {exc}") from None
            finally:
                self._last_frame_end = loop.time()
            self._timeouts_in_row = 0
        if response.isError():
            code = getattr(response, "exception_code", "?")
            raise ModbusReadError("exception", f"unit {unit} on {self.name} answered Modbus exception {code}")
        if function.is_bit:
            return [1 if b else 0 for b in response.bits[:count]]
        registers = list(response.registers)
        if len(registers) != count:
            raise ModbusReadError("protocol", f"unit {unit} on {self.name} returned {len(registers)} registers, asked {count}")
        return registers

    @staticmethod
    async def _request(client: _Client, function: Function, address: int, count: int, unit: int) -> ModbusPDU:
        match function:
            case Function.COIL:
                return await client.read_coils(address, count=count, device_id=unit)
            case Function.DISCRETE:
                return await client.read_discrete_inputs(address, count=count, device_id=unit)
            case Function.HOLDING:
                return await client.read_holding_registers(address, count=count, device_id=unit)
            case Function.INPUT:
                return await client.read_input_registers(address, count=count, device_id=unit)

    async def _connected_client(self) -> _Client:
        if self._client is not None and self._client.connected:
            return self._client
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_connect_at:
            raise ModbusReadError("connect", f"cannot connect to {self.name} (retry backed off)")
        self._drop_client()
        client = self._factory()
        try:
            async with asyncio.timeout(self._connect_timeout):
                ok = await client.connect()
        except TimeoutError:
            ok = False
        if not ok:
            client.close()
            self._next_connect_at = loop.time() + self._connect_backoff.next_delay()
            raise ModbusReadError("connect", f"cannot connect to {self.name}")
        self._connect_backoff.reset()
        self._client = client
        log.info("modbus link connected", extra={"link": self.name})
        return client

    def _on_timeout(self) -> None:
        self._timeouts_in_row += 1
        # A silent TCP peer may be a half-open connection; a serial line stays open (other slaves answer).
        if not self._serial and self._timeouts_in_row >= _TIMEOUTS_BEFORE_RECONNECT:
            self._drop_client()
            self._timeouts_in_row = 0

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._drop_client()


def make_link(transport: TransportConfig, timeout_s: float) -> ModbusLink:
    """A link for the devices sharing `transport.link_key`.

    Args:
        transport: the transport of (any) device on that link.
        timeout_s: the longest per-request timeout of the devices on it (pymodbus' own ceiling).
    """
    serial = transport.kind is not TransportKind.TCP
    return ModbusLink(
        transport.bus_name,
        lambda: make_client(transport, timeout_s + 1.0),
        serial=serial,
        inter_frame_delay_s=transport.inter_frame_delay_ms / 1000 if serial else 0.0,
        connect_timeout_s=max(1.0, timeout_s),
    )
