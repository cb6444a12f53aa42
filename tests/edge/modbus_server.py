"""A real in-process pymodbus server whose registers tests set by (unit, function, address).

Every read goes through a SimDevice `action` hook that copies the test's register dump into the
server's memory, so a test changes what the device answers by assigning to `registers`, and makes a
unit misbehave through `faults` (a Modbus exception code it answers with).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from deploy.services import free_port, port_answers
from edge_agent.registermap import Function

_FC_FUNCTION = {1: Function.COIL, 2: Function.DISCRETE, 3: Function.HOLDING, 4: Function.INPUT}
BLOCK_REGISTERS = 33000  # covers the highest template address (huawei 32106) and bit blocks


@dataclass
class ServedRegisters:
    """What each unit answers: registers[unit][function][address] = value (bits are 0/1)."""

    registers: dict[int, dict[Function, dict[int, int]]] = field(default_factory=dict)
    faults: dict[int, ExcCodes] = field(default_factory=dict)
    # Units that receive requests but never answer (a dead slave behind a gateway or on a bus).
    silent: set[int] = field(default_factory=set)
    reads: int = 0

    def set(self, unit: int, function: Function, address: int, values: list[int]) -> None:
        table = self.registers.setdefault(unit, {}).setdefault(function, {})
        for i, v in enumerate(values):
            table[address + i] = v

    async def action(self, unit: int, function_code: int, start_address: int, address: int, count: int,
                     registers: list[int], set_values: object) -> ExcCodes | None:
        self.reads += 1
        if unit in self.faults:
            return self.faults[unit]
        function = _FC_FUNCTION.get(function_code)
        if function is None:
            return None
        table = self.registers.get(unit, {}).get(function, {})
        if function.is_bit:
            first_word, words = address // 16, (address % 16 + count + 15) // 16
            for w in range(first_word, first_word + words):
                value = sum(1 << b for b in range(16) if table.get(w * 16 + b, 0))
                registers[w - start_address] = value
        else:
            for a in range(address, address + count):
                registers[a - start_address] = table.get(a, 0) & 0xFFFF
        return None


    def drop_silent(self, unit_index: int, sending: bool, packet: bytes) -> bytes:
        """Server trace hook: swallow the answers of silent units."""
        if sending and len(packet) > unit_index and packet[unit_index] in self.silent:
            return b""
        return packet


def sim_devices(served: ServedRegisters, units: list[int]) -> list[SimDevice]:
    devices = []
    for unit in units:
        regs = [SimData(0, count=BLOCK_REGISTERS, values=0, datatype=DataType.REGISTERS)]
        bits = [SimData(0, count=BLOCK_REGISTERS // 16, values=False, datatype=DataType.BITS)]
        devices.append(SimDevice(unit, simdata=(list(bits), list(bits), list(regs), list(regs)),
                                 action=partial(served.action, unit)))
    return devices


@contextlib.asynccontextmanager
async def tcp_server(units: list[int], served: ServedRegisters | None = None, port: int | None = None,
                     framer: FramerType = FramerType.SOCKET) -> AsyncIterator[tuple[ServedRegisters, int]]:
    """Serve `units` on a free loopback port (`framer` RTU makes it a serial-to-TCP server)."""
    served = served or ServedRegisters()
    port = port or free_port()
    server = ModbusTcpServer(sim_devices(served, units), framer=framer, address=("127.0.0.1", port),
                             ignore_missing_devices=True,
                             trace_packet=partial(served.drop_silent, 6 if framer == FramerType.SOCKET else 0))
    await server.serve_forever(background=True)
    try:
        assert port_answers("127.0.0.1", port)
        yield served, port
    finally:
        await server.shutdown()


@contextlib.asynccontextmanager
async def serial_server(path: str, units: list[int], served: ServedRegisters | None = None,
                        baudrate: int = 19200) -> AsyncIterator[ServedRegisters]:
    """Serve `units` as RTU slaves on the serial device `path` (one end of a pty pair)."""
    served = served or ServedRegisters()
    server = ModbusSerialServer(sim_devices(served, units), framer=FramerType.RTU, port=path, baudrate=baudrate,
                                ignore_missing_devices=True, reconnect_delay=0,
                                trace_packet=partial(served.drop_silent, 0))
    await server.serve_forever(background=True)
    try:
        yield served
    finally:
        await server.shutdown()
