"""Payload codec of contract v1: decode and validate, encode.

Decoding raises only `CodecError`, whose `reason` is a stable code (it names the dead-letter sub-topic
and the `/metrics` label), and whose message says what was wrong in words a gateway integrator understands.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

from parkmodel.points import POINTS

CONTRACT_VERSION = 1
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_POINTS_PER_MESSAGE = 10_000
# Store-and-forward can deliver readings that are days old; nothing from before the epoch of the
# platform or from more than a few minutes in the future (a gateway clock gone wrong) is accepted.
DEFAULT_MAX_AGE_MS = 400 * 24 * 3600 * 1000
DEFAULT_MAX_FUTURE_MS = 5 * 60 * 1000


class Reason(StrEnum):
    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    SCHEMA = "schema"
    VERSION = "version"
    EMPTY = "empty"
    UNKNOWN_FIELD = "unknown_field"
    NON_FINITE = "non_finite"
    OUT_OF_RANGE = "out_of_range"
    TIMESTAMP = "timestamp"
    TOPIC = "topic"
    UNKNOWN_DEVICE = "unknown_device"


class CodecError(ValueError):
    """A payload that does not satisfy contract v1.

    Args:
        reason: stable machine-readable code.
        message: what is wrong, for a person.
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.message}"


class Point(msgspec.Struct, forbid_unknown_fields=True):
    ts: int
    fields: dict[str, float]


class Telemetry(msgspec.Struct, forbid_unknown_fields=True):
    v: int
    seq: int
    points: list[Point]


class Event(msgspec.Struct, forbid_unknown_fields=True):
    """A discrete device event (fire panel input, detector fault)."""

    v: int
    seq: int
    ts: int
    type: str
    state: int = 1
    input: int | None = None
    detail: str = ""


class DeviceStatus(msgspec.Struct):
    online: bool
    last_ok_ts: int | None = None
    error: str = ""


class GatewayStatus(msgspec.Struct):
    """Retained gateway status, also the last will (`state` offline, no devices)."""

    v: int
    state: str  # "online" | "offline"
    ts: int = 0
    devices: dict[str, DeviceStatus] = {}


_telemetry_decoder = msgspec.json.Decoder(Telemetry)
_event_decoder = msgspec.json.Decoder(Event)
_status_decoder = msgspec.json.Decoder(GatewayStatus)
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Accepted timestamps, relative to now."""

    max_age_ms: int = DEFAULT_MAX_AGE_MS
    max_future_ms: int = DEFAULT_MAX_FUTURE_MS


def _decode(decoder: msgspec.json.Decoder, payload: bytes, what: str) -> Any:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise CodecError(Reason.TOO_LARGE, f"{what} of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        return decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise CodecError(Reason.SCHEMA, f"{what} does not match contract v1: {exc}") from None
    except msgspec.DecodeError as exc:
        raise CodecError(Reason.NOT_JSON, f"{what} is not valid JSON: {exc}") from None


def _check_version(v: int) -> None:
    if v != CONTRACT_VERSION:
        raise CodecError(Reason.VERSION, f"payload version v={v} is not supported (expected v=1)")


def _check_ts(ts: int, now_ms: int, window: TimeWindow) -> None:
    if ts < now_ms - window.max_age_ms or ts > now_ms + window.max_future_ms:
        raise CodecError(
            Reason.TIMESTAMP,
            f"timestamp {ts} ms is outside the accepted window (now {now_ms} ms, "
            f"-{window.max_age_ms // 1000} s / +{window.max_future_ms // 1000} s); is the gateway clock set?",
        )


def decode_telemetry(payload: bytes, *, now_ms: int | None = None, window: TimeWindow = TimeWindow()) -> Telemetry:
    """Decode and validate a telemetry payload.

    Args:
        payload: the raw MQTT payload.
        now_ms: the reference time for the timestamp window (default: wall clock).
        window: accepted age and lead of timestamps.

    Raises:
        CodecError: the payload breaks contract v1; `reason` says how.
    """
    msg: Telemetry = _decode(_telemetry_decoder, payload, "telemetry payload")
    _check_version(msg.v)
    if msg.seq < 0:
        raise CodecError(Reason.SCHEMA, f"seq must be >= 0, got {msg.seq}")
    if not msg.points:
        raise CodecError(Reason.EMPTY, "telemetry payload has no points")
    if len(msg.points) > MAX_POINTS_PER_MESSAGE:
        raise CodecError(Reason.TOO_LARGE, f"{len(msg.points)} points exceed {MAX_POINTS_PER_MESSAGE} per message")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    for i, p in enumerate(msg.points):
        _check_ts(p.ts, now, window)
        if not p.fields:
            raise CodecError(Reason.EMPTY, f"points[{i}] has no fields")
        for name, value in p.fields.items():
            spec = POINTS.get(name)
            if spec is None:
                raise CodecError(Reason.UNKNOWN_FIELD, f"points[{i}].fields.{name} is not in the point dictionary")
            if not math.isfinite(value):
                raise CodecError(Reason.NON_FINITE, f"points[{i}].fields.{name} is {value}")
            if not spec.low <= value <= spec.high:
                raise CodecError(
                    Reason.OUT_OF_RANGE,
                    f"points[{i}].fields.{name}={value} is outside {spec.low}..{spec.high} {spec.unit}",
                )
    return msg


def decode_event(payload: bytes, *, now_ms: int | None = None, window: TimeWindow = TimeWindow()) -> Event:
    """Decode and validate a device event payload (raises `CodecError`)."""
    msg: Event = _decode(_event_decoder, payload, "event payload")
    _check_version(msg.v)
    _check_ts(msg.ts, int(time.time() * 1000) if now_ms is None else now_ms, window)
    return msg


def decode_status(payload: bytes) -> GatewayStatus:
    """Decode a gateway status payload (raises `CodecError`)."""
    msg: GatewayStatus = _decode(_status_decoder, payload, "status payload")
    _check_version(msg.v)
    if msg.state not in ("online", "offline"):
        raise CodecError(Reason.SCHEMA, f"status state must be 'online' or 'offline', got {msg.state!r}")
    return msg


def encode(msg: msgspec.Struct | dict[str, Any]) -> bytes:
    """Encode any contract payload as compact JSON."""
    return _encoder.encode(msg)


def telemetry_payload(seq: int, points: list[tuple[int, dict[str, float]]]) -> bytes:
    """Build a v1 telemetry payload from `(ts_ms, fields)` pairs."""
    return encode(Telemetry(v=CONTRACT_VERSION, seq=seq, points=[Point(ts=ts, fields=f) for ts, f in points]))
