"""Pure decoding and read-merging logic (no I/O)."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.probe import ORDERS, interpretation_table
from edge_agent.registermap import DataType, Function, PointMap, decode_value, encode_value, merge_reads

NUMERIC = [t for t in DataType if t is not DataType.BIT]
RANGES = {
    DataType.INT16: (-(2**15), 2**15 - 1), DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1), DataType.UINT32: (0, 2**32 - 1),
}


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", NUMERIC)
@given(data=st.data())
def test_encode_decode_round_trip(dtype: DataType, order: str, data: st.DataObject) -> None:
    byte_order, word_order = ORDERS[order]
    if dtype in RANGES:
        value: float = data.draw(st.integers(*RANGES[dtype]))
    elif dtype is DataType.FLOAT32:
        value = data.draw(st.floats(width=32, allow_nan=False))
    else:
        value = data.draw(st.floats(allow_nan=False))
    registers = encode_value(value, dtype, byte_order, word_order)
    assert len(registers) == dtype.registers and all(0 <= r <= 0xFFFF for r in registers)
    assert decode_value(registers, dtype, byte_order, word_order) == value


# float32 123.456 is 0x42F6E979; every order is a permutation of the bytes A=42 B=F6 C=E9 D=79.
@pytest.mark.parametrize(("order", "registers"), [
    ("ABCD", [0x42F6, 0xE979]), ("CDAB", [0xE979, 0x42F6]), ("BADC", [0xF642, 0x79E9]), ("DCBA", [0x79E9, 0xF642]),
])
def test_float32_known_patterns(order: str, registers: list[int]) -> None:
    assert math.isclose(decode_value(registers, DataType.FLOAT32, *ORDERS[order]), 123.456, rel_tol=1e-7)
    assert encode_value(123.456, DataType.FLOAT32, *ORDERS[order]) == registers


@pytest.mark.parametrize(("dtype", "order", "registers", "value"), [
    (DataType.INT16, "ABCD", [0xFF85], -123),
    (DataType.INT16, "BADC", [0x85FF], -123),
    (DataType.UINT16, "ABCD", [0xFFFF], 65535),
    (DataType.INT32, "ABCD", [0xFFFF, 0xFFFE], -2),
    (DataType.INT32, "CDAB", [0xFFFE, 0xFFFF], -2),
    (DataType.UINT32, "ABCD", [0x0001, 0x0000], 65536),
    (DataType.UINT32, "CDAB", [0x0000, 0x0001], 65536),
    (DataType.UINT32, "BADC", [0x5600, 0x40A7], 5678912),
    (DataType.UINT32, "DCBA", [0x40A7, 0x5600], 5678912),
    (DataType.FLOAT64, "ABCD", list(struct.unpack(">4H", struct.pack(">d", 1.5))), 1.5),
    (DataType.FLOAT64, "CDAB", list(reversed(struct.unpack(">4H", struct.pack(">d", 1.5)))), 1.5),
])
def test_known_byte_patterns(dtype: DataType, order: str, registers: list[int], value: float) -> None:
    assert decode_value(registers, dtype, *ORDERS[order]) == value


def test_float64_dcba_is_fully_reversed_bytes() -> None:
    raw = struct.pack(">d", 1234567.891)
    registers = [int.from_bytes(raw[::-1][i : i + 2], "big") for i in range(0, 8, 2)]
    assert decode_value(registers, DataType.FLOAT64, "little", "little") == 1234567.891


def test_scale_and_offset() -> None:
    p = PointMap(point="temperature_c", address=0, type=DataType.INT16, scale=0.1, offset=-40)
    assert p.encode(21.5, "big", "big") == [615]
    assert math.isclose(p.decode([615], "big", "big"), 21.5)


def _p(point: str, address: int, dtype: DataType = DataType.UINT16, function: Function = Function.HOLDING) -> PointMap:
    return PointMap(point=point, address=address, type=dtype, function=function)


def test_merge_contiguous_and_gaps() -> None:
    pts = [_p("voltage_v", 0), _p("current_a", 1), _p("frequency_hz", 5)]
    assert [(b.address, b.count) for b in merge_reads(pts)] == [(0, 2), (5, 1)]
    assert [(b.address, b.count) for b in merge_reads(pts, max_gap=3)] == [(0, 6)]
    assert [(b.address, b.count) for b in merge_reads(pts, max_gap=2)] == [(0, 2), (5, 1)]


def test_merge_respects_the_125_register_limit() -> None:
    pts = [_p("voltage_v", 0, DataType.FLOAT32), _p("current_a", 122, DataType.FLOAT32),
           _p("frequency_hz", 124, DataType.FLOAT32)]
    blocks = merge_reads(pts, max_gap=200)
    assert [(b.address, b.count) for b in blocks] == [(0, 124), (124, 2)]
    assert all(b.count <= 125 for b in blocks)
    assert [(b.address, b.count) for b in merge_reads(pts, max_gap=200, max_count=10)] == [(0, 2), (122, 4)]


def test_merge_keeps_functions_apart() -> None:
    pts = [_p("voltage_v", 0, function=Function.INPUT), _p("current_a", 1, function=Function.HOLDING),
           _p("smoke_alarm", 0, DataType.BIT, Function.DISCRETE)]
    blocks = merge_reads(pts, max_gap=10)
    assert {(b.function, b.address, b.count) for b in blocks} == {
        (Function.INPUT, 0, 1), (Function.HOLDING, 1, 1), (Function.DISCRETE, 0, 1)}


def test_probe_table_shows_every_order() -> None:
    table = interpretation_table([0x42F6, 0xE979], 100)
    assert "123.456" in table.splitlines()[2]  # ABCD row of address 100
    for order in ORDERS:
        assert f"| {order}" in table
    assert "17142" in table  # int16 of 0x42F6
