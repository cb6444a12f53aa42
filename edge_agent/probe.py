"""`smartpark edge probe`: read raw registers and show every interpretation, for commissioning.

An integrator facing an undocumented meter reads a range of registers and looks for the column that
shows a plausible value (230 V, 50 Hz, a growing kWh counter): that column names the type and the
byte/word order to put in the device template.
"""

from __future__ import annotations

import math
from typing import Literal

from edge_agent.config import TransportConfig, TransportKind
from edge_agent.registermap import DataType, Function, Order, decode_value
from edge_agent.transport import make_link

#: Byte/word orders by their usual names: (byte order inside a register, word order).
ORDERS: dict[str, tuple[Order, Order]] = {
    "ABCD": ("big", "big"),
    "CDAB": ("big", "little"),
    "BADC": ("little", "big"),
    "DCBA": ("little", "little"),
}
_MULTI = (DataType.INT32, DataType.UINT32, DataType.FLOAT32, DataType.FLOAT64)


async def read_raw(host: str, address: int, count: int, *, port: int = 502, unit: int = 1,
                   function: Literal["holding", "input"] = "holding", rtu_serial: str | None = None,
                   baudrate: int = 9600, timeout_s: float = 2.0) -> list[int]:
    """Read `count` raw registers over Modbus TCP, or RTU on `rtu_serial` when given."""
    if rtu_serial:
        transport = TransportConfig(kind=TransportKind.RTU, serial_port=rtu_serial, unit_id=unit, baudrate=baudrate)
    else:
        transport = TransportConfig(kind=TransportKind.TCP, host=host, port=port, unit_id=unit)
    link = make_link(transport, timeout_s)
    try:
        out: list[int] = []
        fn = Function(function)
        for start in range(address, address + count, 125):
            n = min(125, address + count - start)
            out += await link.read(fn, start, n, unit, timeout_s)
        return out
    finally:
        link.close()


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def interpretations(registers: list[int], offset: int) -> dict[str, dict[DataType, float | None]]:
    """Every 32/64-bit reading starting at `offset`, by order name (None where registers run out)."""
    out: dict[str, dict[DataType, float | None]] = {}
    for name, (byte_order, word_order) in ORDERS.items():
        row: dict[DataType, float | None] = {}
        for dtype in _MULTI:
            regs = registers[offset : offset + dtype.registers]
            row[dtype] = decode_value(regs, dtype, byte_order, word_order) if len(regs) == dtype.registers else None
        out[name] = row
    return out


def interpretation_table(registers: list[int], address: int) -> str:
    """A text table: per register, its raw value, int16/uint16 (both byte orders), and per order the
    int32/uint32/float32/float64 starting there."""
    head = (f"{'addr':>6} {'raw':>6} {'int16':>7} {'uint16':>7} {'int16 BA':>8} {'uint16 BA':>9} | {'order':5} "
            f"{'int32':>12} {'uint32':>11} {'float32':>13} {'float64':>13}")
    lines = [head, "-" * len(head)]
    for i, reg in enumerate(registers):
        single = {bo: (decode_value([reg], DataType.INT16, bo), decode_value([reg], DataType.UINT16, bo))
                  for bo in ("big", "little")}
        for n, (name, row) in enumerate(interpretations(registers, i).items()):
            left = (f"{address + i:>6} 0x{reg:04X} {_fmt(single['big'][0]):>7} {_fmt(single['big'][1]):>7} "
                    f"{_fmt(single['little'][0]):>8} {_fmt(single['little'][1]):>9}") if n == 0 else " " * 51
            lines.append(f"{left} | {name:5} {_fmt(row[DataType.INT32]):>12} {_fmt(row[DataType.UINT32]):>11} "
                         f"{_fmt(row[DataType.FLOAT32]):>13} {_fmt(row[DataType.FLOAT64]):>13}")
    return "\n".join(lines)
