import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parkmodel.codec import (
    MAX_PAYLOAD_BYTES,
    CodecError,
    Reason,
    decode_event,
    decode_status,
    decode_telemetry,
    telemetry_payload,
)

NOW = 1_790_000_000_000


def payload(**over: object) -> bytes:
    body: dict[str, object] = {"v": 1, "seq": 7, "points": [{"ts": NOW, "fields": {"active_power_kw": 12.5}}]}
    body.update(over)
    return json.dumps(body).encode()


def test_round_trip() -> None:
    raw = telemetry_payload(3, [(NOW, {"active_power_kw": 1.5, "energy_import_kwh": 100.0}), (NOW + 1000, {"voltage_v": 231.0})])
    msg = decode_telemetry(raw, now_ms=NOW)
    assert msg.seq == 3
    assert [p.ts for p in msg.points] == [NOW, NOW + 1000]
    assert msg.points[0].fields == {"active_power_kw": 1.5, "energy_import_kwh": 100.0}


def test_integers_are_accepted_as_numbers() -> None:
    msg = decode_telemetry(payload(points=[{"ts": NOW, "fields": {"smoke_alarm": 1}}]), now_ms=NOW)
    assert msg.points[0].fields["smoke_alarm"] == 1.0


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", Reason.NOT_JSON),
        (b"", Reason.NOT_JSON),
        (b'{"v":1,"seq":1,"points":[{"ts":1,"fields":{"active_power_kw":NaN}}]}', Reason.NOT_JSON),
        (payload(v=2), Reason.VERSION),
        (payload(seq=-1), Reason.SCHEMA),
        (payload(seq="1"), Reason.SCHEMA),
        (payload(points=[]), Reason.EMPTY),
        (payload(points=[{"ts": NOW, "fields": {}}]), Reason.EMPTY),
        (payload(points=[{"ts": NOW, "fields": {"power": 1}}]), Reason.UNKNOWN_FIELD),
        (payload(points=[{"ts": NOW, "fields": {"active_power_kw": "1"}}]), Reason.SCHEMA),
        (payload(points=[{"ts": NOW, "fields": {"active_power_kw": True}}]), Reason.SCHEMA),
        (payload(points=[{"ts": NOW, "fields": {"power_factor": 1.7}}]), Reason.OUT_OF_RANGE),
        (payload(points=[{"ts": NOW + 3_600_000, "fields": {"voltage_v": 1}}]), Reason.TIMESTAMP),
        (payload(points=[{"ts": 0, "fields": {"voltage_v": 1}}]), Reason.TIMESTAMP),
        (payload(extra=1), Reason.SCHEMA),
        (payload(points=[{"ts": NOW}]), Reason.SCHEMA),
        (b"[1,2,3]", Reason.SCHEMA),
        (b"x" * (MAX_PAYLOAD_BYTES + 1), Reason.TOO_LARGE),
    ],
)
def test_rejections_carry_a_reason(raw: bytes, reason: Reason) -> None:
    with pytest.raises(CodecError) as err:
        decode_telemetry(raw, now_ms=NOW)
    assert err.value.reason is reason
    assert err.value.message


def test_overflowing_number_is_rejected() -> None:
    with pytest.raises(CodecError) as err:
        decode_telemetry(b'{"v":1,"seq":1,"points":[{"ts":1,"fields":{"active_power_kw":1e999}}]}', now_ms=NOW)
    assert err.value.reason in (Reason.SCHEMA, Reason.NON_FINITE)


def test_event_and_status() -> None:
    ev = decode_event(json.dumps({"v": 1, "seq": 2, "ts": NOW, "type": "smoke_alarm", "state": 1, "input": 0}).encode(),
                      now_ms=NOW)
    assert (ev.type, ev.state, ev.input) == ("smoke_alarm", 1, 0)
    st_ = decode_status(b'{"v":1,"state":"online","ts":5,"devices":{"d1":{"online":false,"error":"timeout"}}}')
    assert st_.devices["d1"].online is False
    with pytest.raises(CodecError) as err:
        decode_status(b'{"v":1,"state":"maybe"}')
    assert err.value.reason is Reason.SCHEMA


def test_default_window_uses_wall_clock() -> None:
    now = int(time.time() * 1000)
    assert decode_telemetry(payload(points=[{"ts": now, "fields": {"voltage_v": 230}}])).points[0].ts == now


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_bytes_raise_only_codec_errors(raw: bytes) -> None:
    try:
        decode_telemetry(raw, now_ms=NOW)
    except CodecError:
        pass


@settings(max_examples=400, deadline=None)
@given(json_values, st.integers(), st.integers(min_value=-2, max_value=3))
def test_fuzz_structured_payloads_raise_only_codec_errors(fields: object, ts: int, v: int) -> None:
    raw = json.dumps({"v": v, "seq": 1, "points": [{"ts": ts, "fields": fields}]}, allow_nan=True).encode()
    for decode in (decode_telemetry, decode_event, decode_status):
        try:
            decode(raw)
        except CodecError:
            pass
