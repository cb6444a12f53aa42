"""The telemetry fast path agrees with `parkmodel.codec` on every verdict, and InfluxDB reads its lines back exactly."""

from __future__ import annotations

import math

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.fastpath import telemetry_body
from ingest.translate import Translator
from parkmodel.codec import CodecError, telemetry_payload
from parkmodel.points import POINTS
from tests.conftest import make_registry

NOW_MS = 1_780_000_000_000
SERIES = b"telemetry,device=m1,park=p1 "
WINDOW = (NOW_MS - 400 * 86_400_000, NOW_MS + 300_000)


def body_of(translator: Translator, topic: str, payload: bytes) -> tuple[bytes, int] | str:
    try:
        return translator.translate_body(topic, payload)
    except CodecError as exc:
        return exc.reason.value


def slow_verdict(translator: Translator, topic: str, payload: bytes) -> list[str] | str:
    try:
        return translator.translate(topic, payload)
    except CodecError as exc:
        return exc.reason.value


def test_compact_payload_becomes_lines_without_reformatting_numbers() -> None:
    payload = telemetry_payload(7, [(NOW_MS - 1000, {"active_power_kw": 12.5, "voltage_v": 230.0}),
                                    (NOW_MS, {"active_power_kw": 1e-7, "energy_import_kwh": 123456789.125})])
    body, points = telemetry_body(SERIES, payload, *WINDOW) or (b"", 0)
    assert points == 2
    assert body.split(b"\n") == [
        SERIES + b"active_power_kw=12.5,voltage_v=230.0 %d" % (NOW_MS - 1000),
        SERIES + b"active_power_kw=1e-7,energy_import_kwh=123456789.125 %d" % NOW_MS,
    ]


@pytest.mark.parametrize("payload", [
    b'{"v":1,"seq":1,"points":[{"ts":%d,"fields":{"active_power_kw": 1.0}}]}' % NOW_MS,  # whitespace
    b'{"v":1,"seq":1,"points":[{"ts":%d,"fields":{"active\\u005fpower_kw":1.0}}]}' % NOW_MS,  # escape
    b'{"v":1,"seq":1,"points":[{"ts":%d,"fields":{"nonsense":1.0}}]}' % NOW_MS,
    b'{"v":1,"seq":1,"points":[{"ts":%d,"fields":{"voltage_v":-5}}]}' % NOW_MS,
    b'{"v":1,"seq":1,"points":[{"ts":%d,"fields":{"voltage_v":1e999}}]}' % NOW_MS,
    b'{"v":1,"seq":1,"points":[{"ts":%d,"fields":{}}]}' % NOW_MS,
    b'{"v":1,"seq":1,"points":[{"ts":%d,"fields":{"voltage_v":"230"}}]}' % NOW_MS,
    b'{"v":2,"seq":1,"points":[{"ts":%d,"fields":{"voltage_v":230}}]}' % NOW_MS,
    b'{"v":1,"seq":-1,"points":[{"ts":%d,"fields":{"voltage_v":230}}]}' % NOW_MS,
    b'{"v":1,"seq":1,"points":[]}',
    b'{"v":1,"seq":1,"points":[{"ts":1,"fields":{"voltage_v":230}}]}',
    b'{"v":1,"seq":1,"points":[{"ts":%d,"fields":{"voltage_v":230},"x":1}]}' % NOW_MS,
    b"not json",
])
def test_anything_unusual_is_left_to_the_codec(payload: bytes) -> None:
    assert telemetry_body(SERIES, payload, *WINDOW) is None


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
any_value = st.one_of(finite, st.sampled_from([math.inf, -math.inf, math.nan, 0.0, -0.0, 1e300]),
                      st.integers(min_value=-(10**13), max_value=10**13))
field_name = st.one_of(st.sampled_from(sorted(POINTS)), st.just("unknown_point"))
point = st.tuples(st.integers(min_value=NOW_MS - 500 * 86_400_000, max_value=NOW_MS + 600_000),
                  st.dictionaries(field_name, any_value, max_size=6))


@settings(max_examples=300, deadline=None)
@given(points=st.lists(point, max_size=4), seq=st.integers(min_value=-2, max_value=5), compact=st.booleans())
def test_fast_and_slow_paths_agree(points: list[tuple[int, dict[str, float]]], seq: int, compact: bool) -> None:
    uid = "fp"
    translator = Translator(make_registry(uid), clock=lambda: NOW_MS / 1000)
    topic = f"sp/v1/p{uid}/e{uid}-0/m{uid}/telemetry"
    doc = {"v": 1, "seq": seq, "points": [{"ts": ts, "fields": f} for ts, f in points]}
    try:
        payload = orjson.dumps(doc) if compact else orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    except orjson.JSONEncodeError:
        return
    payload = payload.replace(b"null", b"1e999")  # orjson writes NaN/inf as null: make them overflow instead
    fast = body_of(translator, topic, payload)
    slow = slow_verdict(translator, topic, payload)
    if isinstance(slow, str):
        assert fast == slow  # rejected with the same reason
        return
    assert not isinstance(fast, str)
    body, n = fast
    assert n == len(slow)
    parsed_fast = [_parse(line) for line in body.decode().split("\n")]
    assert parsed_fast == [_parse(line) for line in slow]


def _parse(line: str) -> tuple[str, dict[str, float], int]:
    series, fields, ts = line.rsplit(" ", 2)
    return series, {k: float(v) for k, v in (f.split("=") for f in fields.split(","))}, int(ts)


def test_influxdb_reads_fast_path_numbers_back_exactly(influx_url: str, influx_db: str) -> None:
    values = [0.0, -0.0, 1.0, 12.5, 1e-7, 2.5e-5, 123456789.125, 1e12, 0.1 + 0.2, 5e-324]
    payload = telemetry_payload(1, [(NOW_MS + i, {"energy_import_kwh": abs(v)}) for i, v in enumerate(values)])
    raw_ints = b'{"v":1,"seq":2,"points":[{"ts":%d,"fields":{"energy_import_kwh":42}}]}' % (NOW_MS + 100)
    lines = []
    for p in (payload, raw_ints):
        result = telemetry_body(b"fp,device=d ", p, *WINDOW)
        assert result is not None
        lines.append(result[0])
    r = httpx.post(f"{influx_url}/write", params={"db": influx_db, "precision": "ms"}, content=b"\n".join(lines))
    assert r.status_code == 204, r.text
    q = httpx.get(f"{influx_url}/query", params={"db": influx_db, "q": "SELECT energy_import_kwh FROM fp",
                                                  "epoch": "ms"})
    rows = q.json()["results"][0]["series"][0]["values"]
    assert [v for _, v in rows] == [abs(v) for v in values] + [42.0]  # 42 without `i` is a float, not an int
