"""Line protocol escaping and formatting; a round trip through the real InfluxDB proves the escapes."""

from __future__ import annotations

import httpx
import pytest

from ingest.lineproto import (
    FIELD_KEYS,
    LineProtocolError,
    escape_key,
    escape_measurement,
    float_field,
    float_fields,
    int_field,
    line,
    series_key,
    string_field,
    telemetry_lines,
)
from parkmodel.points import POINTS


@pytest.mark.parametrize(("raw", "escaped"), [
    ("plain", "plain"),
    ("a b", r"a\ b"),
    ("a,b", r"a\,b"),
    ("a=b", r"a\=b"),
    ("a, =b", r"a\,\ \=b"),
    ('quote"d', 'quote"d'),  # quotes need no escape outside string fields
    ("园区 1", r"园区\ 1"),
])
def test_tag_and_field_keys_escape_comma_equals_space(raw: str, escaped: str) -> None:
    assert escape_key(raw) == escaped


def test_measurement_escapes_comma_and_space_but_not_equals() -> None:
    assert escape_measurement("my m,x=1") == r"my\ m\,x=1"


def test_string_fields_quote_and_escape_backslash_and_quote() -> None:
    assert string_field('say "hi" \\ bye') == r'"say \"hi\" \\ bye"'
    assert string_field("") == '""'


@pytest.mark.parametrize("bad", ["", "a\nb", "a\rb", "trailing\\"])
def test_names_line_protocol_cannot_carry_are_refused(bad: str) -> None:
    with pytest.raises(LineProtocolError):
        escape_key(bad, "tag device")


def test_numbers_are_typed_unambiguously() -> None:
    assert float_field(13) == "13.0"  # never read back as an integer field
    assert float_field(1e20) == "1e+20"
    assert float_field(-0.1) == "-0.1"
    assert int_field(True) == "1i" and int_field(7) == "7i"


def test_series_key_sorts_tags_and_escapes() -> None:
    key = series_key("telemetry", {"role": "pv", "park": "p 1", "device": "d,1", "enterprise": "e=1"})
    assert key == r"telemetry,device=d\,1,enterprise=e\=1,park=p\ 1,role=pv"
    with pytest.raises(LineProtocolError, match="tag park"):
        series_key("telemetry", {"park": ""})


def test_telemetry_lines_share_the_series_and_keep_timestamps() -> None:
    series = series_key("telemetry", {"device": "m1"})
    lines = telemetry_lines(series, [(1000, {"active_power_kw": 1.5, "voltage_v": 230}), (2000, {"a b": 2.0})])
    assert lines == ["telemetry,device=m1 active_power_kw=1.5,voltage_v=230 1000",
                     r"telemetry,device=m1 a\ b=2.0 2000"]
    assert line(series, "x=1i", 5) == "telemetry,device=m1 x=1i 5"
    assert set(FIELD_KEYS) == set(POINTS)
    assert float_fields({"active_power_kw": 0.25}) == "active_power_kw=0.25"


def test_escapes_round_trip_through_influxdb(influx_url: str, influx_db: str) -> None:
    tags = {"park": "p 1,x=y", "device": "d=2", "enterprise": "企业 A"}
    detail = 'line 1\nline "2" \\ end'
    body = "\n".join([
        line(series_key("odd m,x", tags), f"{escape_key('f k,=')}={float_field(1.25)},s={string_field(detail)}",
             1_700_000_000_000),
    ])
    r = httpx.post(f"{influx_url}/write", params={"db": influx_db, "precision": "ms"}, content=body.encode())
    assert r.status_code == 204, r.text
    q = httpx.get(f"{influx_url}/query", params={"db": influx_db, "q": 'SELECT * FROM "odd m,x"', "epoch": "ms"})
    series = q.json()["results"][0]["series"][0]
    row = dict(zip(series["columns"], series["values"][0], strict=True))
    assert row["time"] == 1_700_000_000_000
    assert row["f k,="] == 1.25 and row["s"] == detail
    assert (row["park"], row["device"], row["enterprise"]) == (tags["park"], tags["device"], tags["enterprise"])
