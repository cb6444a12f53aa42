"""Register maps: how a device's Modbus registers become named points, and back.

A device template is a YAML file declaring, per point, the function, address, data type, byte and word
order, scale and offset. The simulators encode with the same maps, so what a simulator serves is
exactly what the edge agent decodes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from parkmodel.points import POINTS

TEMPLATE_DIR = Path(__file__).parent / "templates"


class Function(StrEnum):
    COIL = "coil"  # FC1
    DISCRETE = "discrete"  # FC2
    HOLDING = "holding"  # FC3
    INPUT = "input"  # FC4

    @property
    def is_bit(self) -> bool:
        return self in (Function.COIL, Function.DISCRETE)

    @property
    def max_count(self) -> int:
        # Modbus application protocol limits per request.
        return 2000 if self.is_bit else 125


class DataType(StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    BIT = "bit"

    @property
    def registers(self) -> int:
        return _SIZES[self]


_SIZES = {
    DataType.INT16: 1, DataType.UINT16: 1, DataType.INT32: 2, DataType.UINT32: 2,
    DataType.FLOAT32: 2, DataType.FLOAT64: 4, DataType.BIT: 1,
}
_STRUCT = {
    DataType.INT16: "h", DataType.UINT16: "H", DataType.INT32: "i", DataType.UINT32: "I",
    DataType.FLOAT32: "f", DataType.FLOAT64: "d",
}
Order = Literal["big", "little"]


def registers_to_bytes(registers: list[int], byte_order: Order, word_order: Order) -> bytes:
    """Registers as received (16-bit each) to big-endian bytes of the value.

    `byte_order` is the order of the two bytes inside each register, `word_order` the order of the
    registers (big = most significant register first, i.e. ABCD; little word order = CDAB; little
    byte order = BADC; both little = DCBA).
    """
    words = registers if word_order == "big" else list(reversed(registers))
    if byte_order == "big":
        return b"".join(w.to_bytes(2, "big") for w in words)
    return b"".join(w.to_bytes(2, "little") for w in words)


def bytes_to_registers(raw: bytes, byte_order: Order, word_order: Order) -> list[int]:
    """The inverse of `registers_to_bytes`."""
    words = [int.from_bytes(raw[i : i + 2], byte_order) for i in range(0, len(raw), 2)]
    return words if word_order == "big" else list(reversed(words))


def decode_value(registers: list[int], dtype: DataType, byte_order: Order = "big", word_order: Order = "big") -> float:
    """Raw registers to the raw (unscaled) number."""
    if dtype is DataType.BIT:
        return float(registers[0] & 1)
    if len(registers) != dtype.registers:
        raise ValueError(f"{dtype.value} needs {dtype.registers} registers, got {len(registers)}")
    return float(struct.unpack(">" + _STRUCT[dtype], registers_to_bytes(registers, byte_order, word_order))[0])


def encode_value(value: float, dtype: DataType, byte_order: Order = "big", word_order: Order = "big") -> list[int]:
    """A raw number to registers (integers are rounded and clamped to the type's range)."""
    if dtype is DataType.BIT:
        return [1 if value else 0]
    code = _STRUCT[dtype]
    if code in "hHiI":
        bits = 16 if code in "hH" else 32
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if code in "hi" else (0, (1 << bits) - 1)
        raw = struct.pack(">" + code, min(hi, max(lo, round(value))))
    else:
        raw = struct.pack(">" + code, value)
    return bytes_to_registers(raw, byte_order, word_order)


class PointMap(BaseModel):
    """One point of a device: where it is and how it is encoded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    point: str
    function: Function = Function.HOLDING
    address: int = Field(ge=0, le=65535)
    type: DataType = DataType.FLOAT32
    byte_order: Order | None = None
    word_order: Order | None = None
    scale: float = 1.0
    offset: float = 0.0
    # Declared measuring range in engineering units: a value outside it is flagged, not published.
    low: float | None = None
    high: float | None = None
    event_on_change: bool = False

    @field_validator("point")
    @classmethod
    def _known_point(cls, value: str) -> str:
        if value not in POINTS:
            raise ValueError(f"unknown point {value!r}; known points: {', '.join(sorted(POINTS))}")
        return value

    @property
    def count(self) -> int:
        return self.type.registers

    def decode(self, registers: list[int], byte_order: Order, word_order: Order) -> float:
        raw = decode_value(registers, self.type, self.byte_order or byte_order, self.word_order or word_order)
        return raw * self.scale + self.offset

    def encode(self, value: float, byte_order: Order, word_order: Order) -> list[int]:
        raw = (value - self.offset) / self.scale
        return encode_value(raw, self.type, self.byte_order or byte_order, self.word_order or word_order)


class Template(BaseModel):
    """A device model's register map."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    vendor: str = ""
    model: str = ""
    description: str = ""
    byte_order: Order = "big"
    word_order: Order = "big"
    # Registers a read may span that no point uses: fewer requests, if the device tolerates it.
    max_gap: int = Field(default=0, ge=0, le=100)
    points: list[PointMap]

    @field_validator("points")
    @classmethod
    def _no_overlap(cls, points: list[PointMap]) -> list[PointMap]:
        used: dict[tuple[Function, int], str] = {}
        for p in points:
            for a in range(p.address, p.address + p.count):
                other = used.get((p.function, a))
                if other is not None:
                    raise ValueError(f"{p.point} overlaps {other} at {p.function.value} register {a}")
                used[(p.function, a)] = p.point
        return points

    def blocks(self, max_count: int | None = None) -> list[ReadBlock]:
        return merge_reads(self.points, self.max_gap, max_count)


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One Modbus request covering several points."""

    function: Function
    address: int
    count: int
    points: tuple[PointMap, ...]


def merge_reads(points: list[PointMap], max_gap: int = 0, max_count: int | None = None) -> list[ReadBlock]:
    """Group points into as few reads as possible.

    Points of one function whose registers are contiguous (or separated by at most `max_gap` unused
    registers) share a read, as long as the read stays within the protocol's limit per request.
    """
    blocks: list[ReadBlock] = []
    by_function: dict[Function, list[PointMap]] = {}
    for p in points:
        by_function.setdefault(p.function, []).append(p)
    for function in Function:
        group = sorted(by_function.get(function, []), key=lambda p: p.address)
        limit = min(max_count or function.max_count, function.max_count)
        current: list[PointMap] = []
        start = end = 0
        for p in group:
            p_end = p.address + p.count
            if current and p.address - end <= max_gap and p_end - start <= limit:
                current.append(p)
                end = max(end, p_end)
                continue
            if current:
                blocks.append(ReadBlock(function, start, end - start, tuple(current)))
            current, start, end = [p], p.address, p_end
        if current:
            blocks.append(ReadBlock(function, start, end - start, tuple(current)))
    return blocks


def decode_block(block: ReadBlock, values: list[int], template: Template) -> dict[str, float]:
    """Decode one read's registers (or bits) into engineering values by point name."""
    out: dict[str, float] = {}
    for p in block.points:
        i = p.address - block.address
        out[p.point] = p.decode(values[i : i + p.count], template.byte_order, template.word_order)
    return out


BlockDecoder = Callable[[list[int]], dict[str, float]]


def compile_block(block: ReadBlock, template: Template) -> BlockDecoder:
    """`decode_block` for one block, prepared once per device: the same values, a fraction of the work per poll.

    The block's registers are packed once into bytes with big-endian words (ABCD...) and once with
    little-endian words (BADC...); every byte/word order of a value is then one `struct` read of one of
    them: ABCD is ">" of the first, DCBA "<" of the first, BADC ">" of the second, CDAB "<" of the second.
    """
    if block.function.is_bit or any(p.type is DataType.BIT for p in block.points):
        return lambda values: decode_block(block, values, template)
    n = block.count
    as_big, as_little = struct.Struct(f">{n}H"), struct.Struct(f"<{n}H")
    plan: list[tuple[str, bool, struct.Struct, int, float, float]] = []
    for p in block.points:
        byte_order = p.byte_order or template.byte_order
        word_order = p.word_order or template.word_order
        endian = ">" if word_order == "big" else "<"
        plan.append((p.point, byte_order == word_order, struct.Struct(endian + _STRUCT[p.type]),
                     2 * (p.address - block.address), p.scale, p.offset))
    need_little = any(not from_big for _, from_big, *_ in plan)

    def decode(values: list[int]) -> dict[str, float]:
        if len(values) != n:
            raise ValueError(f"block at {block.address} needs {n} registers, got {len(values)}")
        big = as_big.pack(*values)
        little = as_little.pack(*values) if need_little else big
        return {name: float(fmt.unpack_from(big if from_big else little, at)[0]) * scale + offset
                for name, from_big, fmt, at, scale, offset in plan}

    return decode


class TemplateError(ValueError):
    """A template file is missing or invalid; the message names file and key."""


def parse_template(data: object, source: str) -> Template:
    try:
        return Template.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: invalid device template:"]
        for err in exc.errors():
            lines.append(f"  {'.'.join(str(p) for p in err['loc'])}: {err['msg']}")
        raise TemplateError("\n".join(lines)) from None


@cache
def load_template(name: str, directory: Path = TEMPLATE_DIR) -> Template:
    """Load the template `name` from `directory` (`{name}.yaml`)."""
    path = directory / f"{name}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in directory.glob("*.yaml")))
        raise TemplateError(f"{path}: no such device template; shipped templates: {known}") from None
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: not valid YAML: {exc}") from None
    template = parse_template(data, str(path))
    if template.name != name:
        raise TemplateError(f"{path}: name: is {template.name!r}, expected the file's name {name!r}")
    return template


def template_names(directory: Path = TEMPLATE_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))
