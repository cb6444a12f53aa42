"""A device's four Modbus tables as register images, encoded with the device's template.

The image of a table spans the template's lowest to highest address of that table; gaps read as 0
(the templates' `max_gap` lets the edge agent read across them). Tables the template does not use are
served as 16 zero registers (or 16 bits) at address 0, so every function code gets a normal answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData
from pymodbus.simulator.simutils import SimUtils

from edge_agent.registermap import DataType, Function, PointMap, Template
from parkmodel.points import POINTS, PointKind

_SPARE = 16  # registers/bits served for a table the template does not use
_INT_BITS = {DataType.INT16: 16, DataType.UINT16: 16, DataType.INT32: 32, DataType.UINT32: 32}
# What a broken transmitter or a failed A/D converter puts in its registers: all ones, or NaN.
_GARBAGE_RAW = {
    DataType.INT16: 0x7FFF, DataType.UINT16: 0xFFFF, DataType.INT32: 0x7FFFFFFF, DataType.UINT32: 0xFFFFFFFF,
    DataType.FLOAT32: math.nan, DataType.FLOAT64: math.nan, DataType.BIT: 1,
}


@dataclass
class TableImage:
    """One table of one device: first address and its registers (bit tables: packed 16 bits a register)."""

    function: Function
    start: int  # register address (bit tables: bit address, a multiple of 16)
    size: int  # registers (bit tables: bits)
    used: bool  # the template has points in it; unused tables are never overwritten by the simulator
    bits: list[bool]
    registers: list[int]

    def sim_data(self) -> list[SimData]:
        """The pymodbus datastore block for this table (measured tables are read-only)."""
        if self.function.is_bit:
            return [SimData(self.start, values=[False] * self.size, datatype=SimType.BITS, readonly=self.used)]
        return [SimData(self.start, count=self.size, values=0, datatype=SimType.REGISTERS, readonly=self.used)]

    def packed(self) -> list[int]:
        """The registers as the datastore holds them."""
        return SimUtils.bitsToRegisters(self.bits) if self.function.is_bit else self.registers


def wrap_counter(point: PointMap, value: float) -> float:
    """An integer counter register rolls over at 2^bits raw, as real meters do (encode_value would clamp)."""
    bits = _INT_BITS.get(point.type)
    if bits is None or POINTS[point.point].kind is not PointKind.COUNTER:
        return value
    span = (1 << bits) * point.scale
    return (value - point.offset) % span + point.offset


class DeviceImage:
    """The register images of one device, rewritten from engineering values on every tick.

    Args:
        template: the device's register map.
    """

    def __init__(self, template: Template) -> None:
        self.template = template
        self.tables: dict[Function, TableImage] = {}
        for function in Function:
            points = [p for p in template.points if p.function is function]
            if not points:
                size = _SPARE
                self.tables[function] = TableImage(function, 0, size, False, [False] * size, [0] * size)
                continue
            lo = min(p.address for p in points)
            hi = max(p.address + p.count for p in points)
            if function.is_bit:
                lo = lo // 16 * 16
                size = -(-(hi - lo) // 16) * 16
            else:
                size = hi - lo
            self.tables[function] = TableImage(function, lo, size, True, [False] * size, [0] * size)

    def write(self, values: dict[str, float], garbage: bool = False) -> None:
        """Encode engineering `values` (by point name) into the images; `garbage` writes broken patterns.

        Args:
            values: engineering values; points missing here keep their registers.
            garbage: write out-of-range raw patterns instead of the values.
        """
        t = self.template
        for p in t.points:
            table = self.tables[p.function]
            i = p.address - table.start
            if garbage:
                raw = _GARBAGE_RAW[p.type]
                if p.type is DataType.BIT:
                    table.bits[i] = True
                else:
                    value = raw * p.scale + p.offset if not math.isnan(raw) else math.nan
                    table.registers[i : i + p.count] = p.encode(value, t.byte_order, t.word_order)
                continue
            if p.point not in values:
                continue
            value = values[p.point]
            if p.type is DataType.BIT:
                table.bits[i] = bool(value)
            else:
                table.registers[i : i + p.count] = p.encode(wrap_counter(p, value), t.byte_order, t.word_order)

    def read_point(self, point: str) -> float:
        """Decode one point back from the image (what a client would see)."""
        for p in self.template.points:
            if p.point == point:
                table = self.tables[p.function]
                i = p.address - table.start
                if p.type is DataType.BIT:
                    return float(table.bits[i])
                return p.decode(table.registers[i : i + p.count], self.template.byte_order, self.template.word_order)
        raise KeyError(point)
