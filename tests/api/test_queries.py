"""Pure logic of the InfluxQL builder: quoting, validation, the automatic downsampling interval."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.errors import ApiError
from api.queries import (
    MAX_POINTS,
    HistoryWindow,
    auto_every,
    history_query,
    history_window,
    latest_kpi_query,
    parse_fields,
    parse_time,
    quote_ident,
    quote_string,
)


def test_quoting_escapes_quotes_and_backslashes() -> None:
    assert quote_ident('a"b\\c') == '"a\\"b\\\\c"'
    assert quote_string("it's\\") == "'it\\'s\\\\'"


def test_parse_time_accepts_iso_with_offset_and_epoch_ms() -> None:
    assert parse_time("1700000000000", "start") == 1_700_000_000_000
    assert parse_time("2024-05-01T08:00:00+08:00", "start") == parse_time("2024-05-01T00:00:00Z", "start")
    for bad in ("2024-05-01T08:00:00", "now", "1e12", ""):
        with pytest.raises(ApiError) as info:
            parse_time(bad, "start")
        assert info.value.code == "invalid_request"


def test_parse_fields_only_accepts_dictionary_points() -> None:
    assert parse_fields(None) is None
    assert parse_fields("voltage_v, active_power_kw,voltage_v") == ["voltage_v", "active_power_kw"]
    with pytest.raises(ApiError):
        parse_fields('active_power_kw") FROM x;--')


@given(st.integers(min_value=1, max_value=400 * 86_400_000))
def test_auto_every_keeps_at_most_max_points(range_ms: int) -> None:
    every = auto_every(range_ms)
    assert range_ms / (every * 1000) <= MAX_POINTS
    assert every == 1 or range_ms / (every * 1000) > MAX_POINTS / 10  # not needlessly coarse


def test_history_window_defaults_to_the_last_hour() -> None:
    window = history_window(None, None, None, now_ms=10_000_000)
    assert window == HistoryWindow(10_000_000 - 3_600_000, 10_000_000, 2)


def test_history_query_is_built_from_checked_parts_only() -> None:
    q = history_query("m-1", ["active_power_kw"], HistoryWindow(1000, 61_000, 10))
    assert q == ('SELECT mean("active_power_kw") AS "active_power_kw" FROM "telemetry" WHERE "device" = \'m-1\' '
                 "AND time >= 1000ms AND time < 61000ms GROUP BY time(10s) fill(none)")
    with pytest.raises(ValueError, match="not a contract id"):
        history_query("m' OR 1=1", None, HistoryWindow(0, 1, 1))
    with pytest.raises(ValueError, match="point dictionary"):
        history_query("m-1", ['x") FROM y'], HistoryWindow(0, 1, 1))
    assert latest_kpi_query("enterprise", "e-1").endswith("\"enterprise\" = 'e-1' ORDER BY time DESC LIMIT 1")
