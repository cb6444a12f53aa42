"""Micro-batch decoding: columns, and the codec's reasons for bad messages, checked as arrays."""

from __future__ import annotations

import math

from analytics.decode import decode_batch
from analytics.devices import FIELD_CODES
from parkmodel.codec import CodecError, Reason, decode_telemetry, telemetry_payload

NOW = 1_750_000_000_000


def test_columns_and_reasons_match_the_codec() -> None:
    good = telemetry_payload(1, [(NOW, {"energy_import_kwh": 5.0, "active_power_kw": 2}),
                                 (NOW + 1000, {"voltage_v": 230.0})])
    bad = {
        Reason.NOT_JSON: b"{nope",
        Reason.SCHEMA: b'{"v":1,"seq":1,"points":[{"ts":"x","fields":{}}]}',
        Reason.VERSION: b'{"v":2,"seq":1,"points":[{"ts":1,"fields":{"voltage_v":1}}]}',
        Reason.EMPTY: b'{"v":1,"seq":1,"points":[]}',
        Reason.UNKNOWN_FIELD: telemetry_payload(1, [(NOW, {"voltage_v": 1.0, "warp_factor": 9.0})]),
        Reason.OUT_OF_RANGE: telemetry_payload(1, [(NOW, {"power_factor": 1.5})]),
        Reason.TIMESTAMP: telemetry_payload(1, [(NOW + 3600_000, {"voltage_v": 1.0})]),
    }
    payloads = [good, *bad.values(), good]
    cols = decode_batch([3] + [4] * len(bad) + [5], payloads, NOW)
    assert cols.messages_ok == 2
    assert dict(cols.rejected) == dict.fromkeys(bad, 1)
    assert cols.device.tolist() == [3, 3, 3, 5, 5, 5]
    assert cols.ts.tolist() == [NOW, NOW, NOW + 1000] * 2
    assert cols.field.tolist() == [FIELD_CODES[f] for f in ("energy_import_kwh", "active_power_kw", "voltage_v")] * 2
    assert cols.value.tolist() == [5.0, 2.0, 230.0] * 2
    for reason, payload in bad.items():  # the same verdict as the per-message codec
        try:
            decode_telemetry(payload, now_ms=NOW)
        except CodecError as exc:
            assert exc.reason == reason
        else:
            raise AssertionError(reason)
    assert math.isfinite(cols.value.sum())
