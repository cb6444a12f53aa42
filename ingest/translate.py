"""Validate one MQTT message and turn it into line protocol (pure: no I/O).

A message is accepted only when its topic is part of the v1 tree, the device (or gateway) exists in
the registry under that very park and enterprise, and its payload satisfies contract v1. Anything else
raises `CodecError` whose `reason` names the dead-letter sub-topic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ingest.fastpath import telemetry_body
from ingest.lineproto import float_fields, int_field, series_key, string_field
from parkmodel.codec import (
    CodecError,
    Reason,
    TimeWindow,
    decode_event,
    decode_status,
    decode_telemetry,
)
from parkmodel.ids import is_valid_id
from parkmodel.registry import Registry
from parkmodel.topics import DeviceTopic, DeviceTopicKind, TopicError, telemetry_topic

TELEMETRY_MEASUREMENT = "telemetry"
EVENT_MEASUREMENT = "event"
STATUS_MEASUREMENT = "device_status"
GATEWAY_OFFLINE_ERROR = "gateway offline"


@dataclass(frozen=True, slots=True)
class _Route:
    """What a known topic resolves to; computed once per topic and cached."""

    kind: DeviceTopicKind
    park: str
    enterprise: str
    source: str  # device id, or gateway id for status
    # telemetry/event: the device's series key (event appends its `type` tag, which sorts last);
    # status: empty (one series per reported device).
    series: str
    gateway_devices: tuple[str, ...] = ()
    series_prefix: bytes = b""  # telemetry: `series` and the space before the fields, as bytes


class Translator:
    """Turns `(topic, payload)` into line protocol lines, or raises `CodecError`.

    Args:
        registry: the park registry that decides which devices exist where.
        window: accepted timestamp window.
        clock: wall clock in seconds (injectable for tests).
    """

    def __init__(self, registry: Registry, *, window: TimeWindow = TimeWindow(),
                 clock: Callable[[], float] = time.time) -> None:
        self._registry = registry
        self._window = window
        self._clock = clock
        # Only topics that resolved are cached, so junk topics cannot grow it beyond the registry's size.
        self._routes: dict[str, _Route] = {}
        for ref in registry.devices():  # telemetry routes up front: no first-message cost per device
            self._resolve(telemetry_topic(ref.park.id, ref.enterprise.id, ref.device.id))

    def translate_body(self, topic: str, payload: bytes) -> tuple[bytes, int]:
        """Validate a message and return its line protocol (lines joined by `\\n`) and its point count.

        Telemetry in compact form takes the fast path (`ingest.fastpath`); anything else is decoded by
        `parkmodel.codec`, which gives the reason when it is rejected.

        Args:
            topic: the MQTT topic the message arrived on.
            payload: the raw MQTT payload.

        Raises:
            CodecError: with the dead-letter reason.
        """
        route = self._routes.get(topic) or self._resolve(topic)
        if route.kind is DeviceTopicKind.TELEMETRY:
            now_ms = int(self._clock() * 1000)
            fast = telemetry_body(route.series_prefix, payload, now_ms - self._window.max_age_ms,
                                  now_ms + self._window.max_future_ms)
            if fast is not None:
                return fast
        lines = self.translate(topic, payload)
        return "\n".join(lines).encode(), len(lines)

    def translate(self, topic: str, payload: bytes) -> list[str]:
        """Validate a message and return its lines (possibly none, e.g. an empty status).

        Args:
            topic: the MQTT topic the message arrived on.
            payload: the raw payload.

        Raises:
            CodecError: with the dead-letter reason.
        """
        route = self._routes.get(topic) or self._resolve(topic)
        now_ms = int(self._clock() * 1000)
        if route.kind is DeviceTopicKind.TELEMETRY:
            msg = decode_telemetry(payload, now_ms=now_ms, window=self._window)
            series = route.series
            return [f"{series} {float_fields(p.fields)} {p.ts}" for p in msg.points]
        if route.kind is DeviceTopicKind.EVENT:
            return [self._event_line(route, payload, now_ms)]
        return self._status_lines(route, payload, now_ms)

    def _resolve(self, topic: str) -> _Route:
        try:
            parsed = DeviceTopic.parse(topic)
        except TopicError as exc:
            raise CodecError(Reason.TOPIC, str(exc)) from None
        is_status = parsed.kind is DeviceTopicKind.STATUS
        route = self._resolve_gateway(parsed) if is_status else self._resolve_device(parsed)
        self._routes[topic] = route
        return route

    def _resolve_device(self, parsed: DeviceTopic) -> _Route:
        ref = self._registry.device_at(parsed.park, parsed.enterprise, parsed.device)
        if ref is None:
            known = self._registry.device(parsed.device)
            if known is None:
                raise CodecError(Reason.UNKNOWN_DEVICE, f"device {parsed.device!r} is not in the registry")
            raise CodecError(
                Reason.TOPIC,
                f"device {parsed.device!r} belongs to {known.park.id}/{known.enterprise.id}, "
                f"not {parsed.park}/{parsed.enterprise}",
            )
        measurement = TELEMETRY_MEASUREMENT if parsed.kind is DeviceTopicKind.TELEMETRY else EVENT_MEASUREMENT
        tags = {"park": parsed.park, "enterprise": parsed.enterprise, "device": parsed.device,
                "role": ref.device.role.value}
        series = series_key(measurement, tags)
        return _Route(parsed.kind, parsed.park, parsed.enterprise, parsed.device, series,
                      series_prefix=f"{series} ".encode())

    def _resolve_gateway(self, parsed: DeviceTopic) -> _Route:
        found = self._registry.gateway(parsed.device)
        if found is None:
            raise CodecError(Reason.UNKNOWN_DEVICE, f"gateway {parsed.device!r} is not in the registry")
        park, enterprise, gateway = found
        if park.id != parsed.park or enterprise.id != parsed.enterprise:
            raise CodecError(
                Reason.TOPIC,
                f"gateway {parsed.device!r} belongs to {park.id}/{enterprise.id}, not {parsed.park}/{parsed.enterprise}",
            )
        return _Route(parsed.kind, park.id, enterprise.id, gateway.id, "",
                      tuple(d.id for d in gateway.devices))

    def _event_line(self, route: _Route, payload: bytes, now_ms: int) -> str:
        event = decode_event(payload, now_ms=now_ms, window=self._window)
        if not is_valid_id(event.type):
            raise CodecError(Reason.SCHEMA, f"event type {event.type!r} must match [a-z0-9][a-z0-9_-]{{0,63}}")
        if event.seq < 0:
            raise CodecError(Reason.SCHEMA, f"seq must be >= 0, got {event.seq}")
        fields = [f"state={int_field(event.state)}", f"seq={int_field(event.seq)}"]
        if event.input is not None:
            fields.append(f"input={int_field(event.input)}")
        if event.detail:
            fields.append(f"detail={string_field(event.detail)}")
        return f"{route.series},type={event.type} {','.join(fields)} {event.ts}"

    def _status_lines(self, route: _Route, payload: bytes, now_ms: int) -> list[str]:
        status = decode_status(payload)
        if status.ts:
            if not now_ms - self._window.max_age_ms <= status.ts <= now_ms + self._window.max_future_ms:
                raise CodecError(Reason.TIMESTAMP, f"status timestamp {status.ts} ms is outside the accepted window "
                                                   f"(now {now_ms} ms); is the gateway clock set?")
            ts = status.ts
        else:
            ts = now_ms  # the last will carries ts 0: it is true from the moment it arrives
        unknown = sorted(set(status.devices) - set(route.gateway_devices))
        if unknown:
            raise CodecError(Reason.UNKNOWN_DEVICE,
                             f"status of gateway {route.source!r} names devices it does not have: {', '.join(unknown)}")
        reports: list[tuple[str, bool, str]] = [(d, s.online, s.error) for d, s in status.devices.items()]
        if status.state == "offline" and not reports:
            reports = [(d, False, GATEWAY_OFFLINE_ERROR) for d in route.gateway_devices]
        lines = []
        for device, online, error in reports:
            series = series_key(STATUS_MEASUREMENT, {"park": route.park, "enterprise": route.enterprise,
                                                     "gateway": route.source, "device": device})
            lines.append(f"{series} online={int_field(online)},error={string_field(error)} {ts}")
        return lines
