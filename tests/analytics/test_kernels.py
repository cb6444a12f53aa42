"""Kernels on small tables worked out by hand."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest

from analytics import kernels as k
from analytics.state import day_start_ms

I64 = np.int64
MIN = 60_000
U32_MOD = 2**32 * 0.01  # uint32 counter in 0.01 kWh


def arr(*values: float, dtype: type = np.float64) -> np.ndarray:
    return np.asarray(values, dtype=dtype)


def ints(*values: int) -> np.ndarray:
    return np.asarray(values, dtype=I64)


def steps(sid: np.ndarray, ts: np.ndarray, value: np.ndarray, modulus: float = 0.0, max_gap_ms: int = 10 * MIN,
          n_series: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    order = k.sort_dedupe(sid, ts)
    t0, delta, q = k.counter_steps(sid[order], ts[order], value[order], np.full(n_series, modulus), max_gap_ms,
                                   np.full(n_series, np.nan), np.zeros(n_series, dtype=I64))
    return t0, ts[order], delta, q


def test_sort_dedupe_orders_by_series_then_time_and_keeps_last_arrival() -> None:
    sid = ints(1, 0, 0, 0, 1)
    ts = ints(5, 30, 10, 30, 1)
    order = k.sort_dedupe(sid, ts)
    assert order.tolist() == [2, 3, 4, 0]  # (0,10) (0,30: the later arrival, index 3) (1,1) (1,5)


def test_counter_rise_with_duplicates_and_out_of_order() -> None:
    ts = ints(3 * MIN, 1 * MIN, 2 * MIN, 2 * MIN, 1 * MIN)
    value = arr(130.0, 100.0, 112.0, 112.0, 100.0)
    t0, t1, delta, q = steps(np.zeros(5, dtype=I64), ts, value)
    assert t1.tolist() == [MIN, 2 * MIN, 3 * MIN]
    assert delta.tolist() == [0.0, 12.0, 18.0]
    assert q.tolist() == [k.MISSING, k.MEASURED, k.MEASURED]
    assert t0.tolist() == [MIN, MIN, 2 * MIN]


def test_counter_reset_counts_new_value_from_zero() -> None:
    # Meter replaced between minute 2 and 3: 5000 → 2 → 7.
    _, _, delta, _ = steps(np.zeros(4, dtype=I64), ints(MIN, 2 * MIN, 3 * MIN, 4 * MIN), arr(4990.0, 5000.0, 2.0, 7.0))
    assert delta.tolist() == [0.0, 10.0, 2.0, 5.0]


def test_counter_32bit_rollover_adds_the_modulus() -> None:
    # uint32 in 0.01 kWh wraps at 42,949,672.96 kWh: 42,949,670.00 → 3.00 is 5.96 kWh.
    _, _, delta, q = steps(np.zeros(2, dtype=I64), ints(MIN, 2 * MIN), arr(42_949_670.0, 3.0), modulus=U32_MOD)
    assert delta[1] == pytest.approx(5.96)
    assert q[1] == k.MEASURED


def test_counter_small_drop_is_noise_and_not_counted_twice() -> None:
    _, _, delta, _ = steps(np.zeros(3, dtype=I64), ints(MIN, 2 * MIN, 3 * MIN), arr(100.0, 99.9, 100.2))
    assert delta.sum() == pytest.approx(0.2)


def test_counter_gap_is_flagged() -> None:
    _, _, delta, q = steps(np.zeros(3, dtype=I64), ints(0, MIN, 61 * MIN), arr(0.0, 1.0, 61.0))
    assert delta.tolist() == [0.0, 1.0, 60.0]
    assert q.tolist() == [k.MISSING, k.MEASURED, k.GAP]


def test_counter_anchors_chain_micro_batches_and_skip_late_points() -> None:
    av, at, mod = np.full(1, np.nan), np.zeros(1, dtype=I64), np.zeros(1)
    sid = np.zeros(2, dtype=I64)
    k.counter_steps(sid, ints(MIN, 3 * MIN), arr(10.0, 30.0), mod, 10 * MIN, av, at)
    # Second batch: a late point (2 min, already covered) and a new one.
    t0, delta, q = k.counter_steps(sid, ints(2 * MIN, 4 * MIN), arr(20.0, 45.0), mod, 10 * MIN, av, at)
    assert delta.tolist() == [0.0, 15.0]
    assert q.tolist() == [k.MISSING, k.MEASURED]
    assert t0[1] == 3 * MIN
    assert (av[0], at[0]) == (45.0, 4 * MIN)


def test_power_trapezoid_and_nothing_across_max_gap() -> None:
    ts = ints(0, MIN, 2 * MIN, 30 * MIN, 31 * MIN)
    p = arr(10.0, 20.0, 20.0, 50.0, 50.0)
    _, delta, q = k.power_steps(np.zeros(5, dtype=I64), ts, p, 5 * MIN, np.full(1, np.nan), np.zeros(1, dtype=I64))
    assert delta == pytest.approx([0.0, 15 / 60, 20 / 60, 0.0, 50 / 60])
    assert q.tolist() == [k.MISSING, k.INTEGRATED, k.INTEGRATED, k.MISSING, k.INTEGRATED]


def beijing_ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000) - k.BEIJING_OFFSET_MS


def test_buckets_are_aligned_to_beijing_time() -> None:
    midnight = beijing_ms(2025, 6, 1)  # 2025-05-31 16:00 UTC
    assert midnight == int(datetime(2025, 5, 31, 16, tzinfo=UTC).timestamp() * 1000)
    assert k.bucket_of(ints(midnight - 1, midnight), k.DAY_MS).tolist()[1] - 1 == k.bucket_of(
        ints(midnight - 1), k.DAY_MS)[0]
    idx = k.bucket_of(ints(midnight + 16 * MIN), k.QUARTER_MS)
    assert k.bucket_start_ms(idx, k.QUARTER_MS).tolist() == [midnight + 15 * MIN]


@pytest.fixture
def foreign_tz() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_day_boundary_is_utc_plus_8_whatever_the_server_zone(foreign_tz: None) -> None:
    midnight = beijing_ms(2025, 1, 2)
    assert time.localtime(midnight / 1000).tm_hour == 11  # 11:00 in New York (EST)
    assert day_start_ms(midnight) == midnight
    assert day_start_ms(midnight + 23 * 3600_000) == midnight
    assert day_start_ms(midnight - 1) == midnight - k.DAY_MS


def test_bucket_steps_split_continuous_steps_and_book_gaps_where_they_end() -> None:
    q0 = beijing_ms(2025, 6, 1, 10, 0)
    first = int(k.bucket_of(ints(q0), k.QUARTER_MS)[0])
    # Series 0: 10:10→10:20 (6 kWh, continuous, crosses 10:15), then a gap 10:20→11:05 (9 kWh).
    # Series 1: a gap 10:01→10:14 inside one window (2 kWh).
    sid = ints(0, 0, 1)
    t0 = ints(q0 + 10 * MIN, q0 + 20 * MIN, q0 + 1 * MIN)
    t1 = ints(q0 + 20 * MIN, q0 + 65 * MIN, q0 + 14 * MIN)
    delta = arr(6.0, 9.0, 2.0)
    quality = np.asarray([k.MEASURED, k.GAP, k.GAP], dtype=np.int8)
    energy, qual, covered, span = k.bucket_steps(sid, t0, t1, delta, quality, 2, first, 5, k.QUARTER_MS)
    assert energy[0].tolist() == pytest.approx([3.0, 3.0, 0.0, 0.0, 9.0])
    assert qual[0].tolist() == [k.MEASURED, k.MEASURED, k.MISSING, k.MISSING, k.GAP]
    assert span[0].tolist() == [0, 1, 2, 3, 1]  # the gap began in window 1 (10:15)
    assert covered[0].tolist() == [5 * MIN, 5 * MIN, 0, 0, 0]
    assert energy[1].tolist() == pytest.approx([2.0, 0, 0, 0, 0])
    assert qual[1].tolist() == [k.MEASURED, 0, 0, 0, 0]


def test_window_total_splits_at_midnight_and_leaves_out_gaps_across_it() -> None:
    midnight = beijing_ms(2025, 6, 2)
    sid = ints(0, 1)
    t0 = ints(midnight - MIN, midnight - 60 * MIN)
    t1 = ints(midnight + 3 * MIN, midnight + 60 * MIN)
    quality = np.asarray([k.MEASURED, k.GAP], dtype=np.int8)
    total = np.zeros(2)
    left_out = k.window_total(sid, t0, t1, arr(4.0, 50.0), quality, midnight, midnight + k.DAY_MS, total)
    assert total.tolist() == pytest.approx([3.0, 0.0])
    assert left_out == 1


def test_demand_is_average_kw_per_quarter_and_its_maximum() -> None:
    energy = np.array([[25.0, 50.0, 10.0, 99.0]])
    covered = np.array([[15 * MIN, 15 * MIN, 5 * MIN, 15 * MIN]], dtype=np.float64)
    quality = np.array([[k.MEASURED, k.MEASURED, k.MEASURED, k.GAP]], dtype=np.int8)
    demand = k.demand_kw(energy, covered, quality, k.QUARTER_MS, 0.9)
    assert demand[0, :2].tolist() == [100.0, 200.0]
    assert np.isnan(demand[0, 2]) and np.isnan(demand[0, 3])  # a third covered; a gap
    peak, where = k.max_demand(demand)
    assert (peak[0], where[0]) == (200.0, 1)


def test_latest_values_keeps_newest_timestamp() -> None:
    last, last_ts = np.zeros(2), np.full(2, np.iinfo(I64).min, dtype=I64)
    k.latest_values(ints(0, 0, 1), ints(20, 10, 5), arr(2.0, 1.0, 7.0), last, last_ts)
    assert last.tolist() == [2.0, 7.0]
    assert last_ts.tolist() == [20, 5]


def test_a_whole_step_counts_exactly_its_energy_a_split_one_by_time() -> None:
    d, dt = 0.1 + 0.2, 3 * MIN + 7
    assert k.share(d, dt, dt) == d  # d * dt / dt would be allowed an ulp off; windows must not drift
    assert k.share(6.0, MIN, 3 * MIN) == 2.0
    sid = np.array([0, 0], dtype=I64)
    t0 = np.array([0, 2 * MIN], dtype=I64)
    t1 = np.array([2 * MIN, 5 * MIN], dtype=I64)
    total = np.zeros(1)
    k.window_total(sid, t0, t1, np.array([d, 3.0]), np.array([k.MEASURED, k.MEASURED], dtype=np.int8), 0,
                   4 * MIN, total)
    assert total[0] == d + 2.0
