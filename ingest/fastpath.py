"""Telemetry straight from JSON text to line protocol, validated in C, with no Python object per field.

The profile of ingest (bench/ingest.py --profile) showed most of its time in building a `Point` struct
and a `dict` per reading, checking every field in a Python loop, then `repr`-ing every float back into
text. This path decodes the payload twice with msgspec instead, both passes in C:

1. into structs whose field types carry the point dictionary's ranges (`Meta(ge, le)`), so a payload that
   passes is one `parkmodel.codec.decode_telemetry` accepts (known fields only, in range, finite);
2. into `msgspec.Raw` slices of each point's `fields` object, whose JSON text *is* the line-protocol field
   set once quotes are dropped and `:` becomes `=` (JSON numbers are valid line-protocol floats, and point
   names need no escaping).

It only takes payloads in msgspec's compact form (no whitespace, no escapes); anything else, and anything
it finds wrong, returns None so the caller falls back to `parkmodel.codec`, which accepts or rejects with
the official reason and message. Fast and slow paths therefore agree by construction on what is accepted.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import msgspec

from ingest.lineproto import escape_key
from parkmodel.codec import CONTRACT_VERSION, MAX_PAYLOAD_BYTES, MAX_POINTS_PER_MESSAGE
from parkmodel.points import POINTS


def _fields_struct() -> type[msgspec.Struct]:
    for name, spec in POINTS.items():
        # The text is copied into line protocol verbatim, so a name must need no escaping; ranges must be
        # finite so that an overflowing number (inf) can never pass.
        if escape_key(name, "field key") != name or not (math.isfinite(spec.low) and math.isfinite(spec.high)):
            raise RuntimeError(f"point {name!r} does not suit the telemetry fast path")
    fields: list[Any] = [(name, Annotated[float, msgspec.Meta(ge=spec.low, le=spec.high)], msgspec.UNSET)
                         for name, spec in POINTS.items()]
    return msgspec.defstruct("CheckedFields", fields, forbid_unknown_fields=True)


_CheckedFields = _fields_struct()


class _CheckedPoint(msgspec.Struct, forbid_unknown_fields=True):
    ts: int
    fields: _CheckedFields  # type: ignore[valid-type]


class _CheckedTelemetry(msgspec.Struct, forbid_unknown_fields=True):
    v: int
    seq: Annotated[int, msgspec.Meta(ge=0)]
    points: Annotated[list[_CheckedPoint], msgspec.Meta(min_length=1, max_length=MAX_POINTS_PER_MESSAGE)]


class _RawPoint(msgspec.Struct):
    ts: int
    fields: msgspec.Raw


class _RawTelemetry(msgspec.Struct):
    points: list[_RawPoint]


_check = msgspec.json.Decoder(_CheckedTelemetry).decode
_raw = msgspec.json.Decoder(_RawTelemetry).decode
_UNSAFE = (b" ", b"\n", b"\r", b"\t", b"\\")
_TO_LINE_PROTOCOL = bytes.maketrans(b":", b"=")  # with the quotes deleted, `"a":1.5,"b":2` -> `a=1.5,b=2`


def telemetry_body(series: bytes, payload: bytes, oldest_ms: int, newest_ms: int) -> tuple[bytes, int] | None:
    """Line protocol (lines joined by `\\n`) and the point count of a telemetry payload, or None.

    Args:
        series: the device's series key followed by a space, e.g. `b"telemetry,device=m1,... "`.
        payload: the raw MQTT payload.
        oldest_ms: earliest accepted timestamp (epoch ms).
        newest_ms: latest accepted timestamp (epoch ms).

    Returns:
        None when the payload is not in compact form or breaks the contract in any way: the caller then
        decodes it with `parkmodel.codec`, which says why.
    """
    if len(payload) > MAX_PAYLOAD_BYTES or any(c in payload for c in _UNSAFE):
        return None
    try:
        checked = _check(payload)
        points = _raw(payload).points
    except msgspec.DecodeError:  # ValidationError is a DecodeError
        return None
    if checked.v != CONTRACT_VERSION:
        return None
    lines = []
    for p in points:
        text = bytes(p.fields)
        if not oldest_ms <= p.ts <= newest_ms or text == b"{}":
            return None
        lines.append(b"%s%s %d" % (series, text[1:-1].translate(_TO_LINE_PROTOCOL, b'"'), p.ts))
    return b"\n".join(lines), len(lines)
