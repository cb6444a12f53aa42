"""The fused `fold_batch` gives what sort → steps → windows gives with the separate kernels (energy sums to the
last bits of their rounding, everything else exactly)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import fold
from analytics import kernels as k
from analytics.fold import fold_batch, late_readings

MIN = 60_000
T0 = 1_743_350_400_000 - 3 * k.HOUR_MS  # 2025-03-31 (a month's last day) 00:00 Beijing minus 3 h
N_SERIES = 4
HOURS = 72
QUARTERS = 31 * 96
MODULUS = 1000.0


def _state() -> dict[str, np.ndarray]:
    return {
        "anchor": np.full(N_SERIES, np.nan), "anchor_ts": np.zeros(N_SERIES, dtype=np.int64),
        "today": np.zeros(N_SERIES), "month": np.zeros(N_SERIES),
        "he": np.zeros((N_SERIES, HOURS)), "hc": np.zeros((N_SERIES, HOURS)),
        "hq": np.zeros((N_SERIES, HOURS), dtype=np.int8),
        "qe": np.zeros((2, QUARTERS)), "qc": np.zeros((2, QUARTERS)), "qq": np.zeros((2, QUARTERS), dtype=np.int8),
    }


DEMAND_ROW = np.array([0, -1, 1, -1], dtype=np.int64)
WINDOWS = {"day": (T0 + 3 * k.HOUR_MS, T0 + 27 * k.HOUR_MS), "month": (T0 + 3 * k.HOUR_MS - 29 * k.DAY_MS, T0 + 27 * k.HOUR_MS + k.DAY_MS),
           "first_hour": (T0 - 21 * k.HOUR_MS + k.BEIJING_OFFSET_MS) // k.HOUR_MS,
           "first_quarter": (T0 + 3 * k.HOUR_MS - 29 * k.DAY_MS + k.BEIJING_OFFSET_MS) // k.QUARTER_MS}


def separate(st_: dict[str, np.ndarray], sid: np.ndarray, ts: np.ndarray, v: np.ndarray, integrate: bool,
             max_gap: int) -> tuple[int, int]:
    """The way the streaming state folded a batch before the fused kernel."""
    order = k.sort_dedupe(sid, ts)
    s, t = sid[order], ts[order]
    if integrate:
        t0, d, q = k.power_steps(s, t, v[order], max_gap, st_["anchor"], st_["anchor_ts"])
    else:
        t0, d, q = k.counter_steps(s, t, v[order], np.full(N_SERIES, MODULUS), max_gap, st_["anchor"],
                                   st_["anchor_ts"])
    left = k.window_total(s, t0, t, d, q, *WINDOWS["day"], st_["today"])
    k.window_total(s, t0, t, d, q, *WINDOWS["month"], st_["month"])
    dropped = k.add_to_buckets(s, t0, t, d, q, np.arange(N_SERIES), WINDOWS["first_hour"], k.HOUR_MS,
                               st_["he"], st_["hc"], st_["hq"])
    k.add_to_buckets(s, t0, t, d, q, DEMAND_ROW, WINDOWS["first_quarter"], k.QUARTER_MS, st_["qe"], st_["qc"],
                     st_["qq"])
    return left, dropped


def fused(st_: dict[str, np.ndarray], sid: np.ndarray, ts: np.ndarray, v: np.ndarray, integrate: bool,
          max_gap: int, threads: int = 1) -> tuple[int, int]:
    """fold_batch (one thread for batches this small), or its two-thread form (`threads=2`: series 0-1 on one
    thread, 2-3 on the other, as fold_batch runs batches of `fold.PARALLEL_MIN_READINGS` or more)."""
    if threads > 1:
        return fold._fold_parts(
            sid, ts, v, integrate, np.full(N_SERIES, MODULUS), max_gap, st_["anchor"], st_["anchor_ts"],
            *WINDOWS["day"], st_["today"], *WINDOWS["month"], st_["month"], WINDOWS["first_hour"], st_["he"],
            st_["hc"], st_["hq"], DEMAND_ROW, WINDOWS["first_quarter"], st_["qe"], st_["qc"], st_["qq"])
    return fold_batch(sid, ts, v, integrate, np.full(N_SERIES, MODULUS), max_gap, st_["anchor"], st_["anchor_ts"],
                      *WINDOWS["day"], st_["today"], *WINDOWS["month"], st_["month"], WINDOWS["first_hour"],
                      st_["he"], st_["hc"], st_["hq"], DEMAND_ROW, WINDOWS["first_quarter"], st_["qe"], st_["qc"],
                      st_["qq"])


# Energy sums may differ in the last bits: the fused kernel books a counter's run of continuous steps as the
# difference of its ends and a power series' run as one sum (analytics.fold._flush), where the separate kernels
# add step after step. Everything else (anchors, covered time, quality, what is left out) is identical.
ENERGY_KEYS = {"today", "month", "he", "qe"}


def _assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    for key in a:
        if key in ENERGY_KEYS:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-12, atol=1e-9, err_msg=key)
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@st.composite
def batches(draw: st.DrawFn, max_per_series: int = 300) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Readings of 4 series over ~2 days (gaps, resets, rollovers, noise drops), redelivered (sometimes with
    another value), out of order by a little or a lot, cut into micro-batches."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rows = []
    for s in range(N_SERIES):
        n = draw(st.integers(0, max_per_series))
        ts = T0 + np.cumsum(rng.choice([MIN, MIN, 7 * MIN, 40 * MIN, 600 * MIN], n) + rng.integers(0, 1000, n))
        v = np.cumsum(rng.uniform(-1, 30, n)) % MODULUS
        v = np.where(rng.random(n) < 0.03, v * 0.1, v)  # resets
        rows.extend((s, int(t), float(x)) for t, x in zip(ts, v, strict=True))
    order = np.arange(len(rows))
    mode = draw(st.sampled_from(["ordered", "swaps", "shuffled", "blocked"]))
    if mode == "shuffled":
        rng.shuffle(order)
    elif mode == "swaps" and len(rows) > 1:
        for _ in range(len(rows) // 20 + 1):
            a = rng.integers(0, len(rows) - 1)
            order[a], order[a + 1] = order[a + 1], order[a]
    elif mode == "ordered":
        order = np.argsort([r[1] for r in rows], kind="stable")  # time-major, as streams arrive
    elif mode == "blocked":  # time-major blocks, series 0-1 before 2-3 in each: the two-thread fold's segments
        rank = np.argsort(np.argsort([r[1] for r in rows], kind="stable"))
        order = np.lexsort((rank, [r[0] >= N_SERIES // 2 for r in rows], rank // BLOCK))
    arr = [rows[i] for i in order]
    dup = rng.integers(0, max(1, len(arr)), draw(st.integers(0, 30))) if arr else []
    for i in dup:
        s, t, x = arr[i]
        arr.append((s, t, x if rng.random() < 0.7 else x + 1.0))  # a redelivery; sometimes a corrected value
    sid = np.array([r[0] for r in arr], dtype=np.int64)
    ts = np.array([r[1] for r in arr], dtype=np.int64)
    value = np.array([r[2] for r in arr], dtype=np.float64)
    cuts = sorted(draw(st.lists(st.integers(0, len(arr)), max_size=4)))
    edges = [0, *cuts, len(arr)]
    return [(sid[a:z], ts[a:z], value[a:z]) for a, z in itertools.pairwise(edges)]


BLOCK = 1_024  # readings per time block of the "blocked" order


@settings(max_examples=200, deadline=None)
@given(batches(), st.booleans(), st.sampled_from([5 * MIN, 15 * MIN, 120_000]))
def test_fused_fold_equals_the_separate_kernels(parts, integrate: bool, max_gap: int) -> None:  # type: ignore[no-untyped-def]
    a, b, c = _state(), _state(), _state()
    for sid, ts, v in parts:
        want = separate(a, sid, ts, v, integrate, max_gap)
        assert fused(b, sid, ts, v, integrate, max_gap) == want
        assert fused(c, sid, ts, v, integrate, max_gap, threads=2) == want
    _assert_same(a, b)
    _assert_same(a, c)


@settings(max_examples=25, deadline=None)
@given(batches(max_per_series=4000), st.booleans())
def test_batches_of_several_chunks_fold_as_the_separate_kernels(parts, integrate: bool) -> None:  # type: ignore[no-untyped-def]
    # Up to 16,000 readings of 4 series: the fold's chunks (fold._CHUNK) hold many readings of each series, so
    # readings set aside in one chunk are followed by more of the same series (which must wait their turn).
    assert fold._CHUNK < 8_000
    a, b, c = _state(), _state(), _state()
    for sid, ts, v in parts:
        want = separate(a, sid, ts, v, integrate, 15 * MIN)
        assert fused(b, sid, ts, v, integrate, 15 * MIN) == want
        assert fused(c, sid, ts, v, integrate, 15 * MIN, threads=2) == want
    _assert_same(a, b)
    _assert_same(a, c)


def test_late_readings_are_the_redeliveries_and_stragglers_sorted_last_arrival_first() -> None:
    sid = np.array([0, 1, 0, 0, 1, 0, 0], dtype=np.int64)
    ts = np.array([10, 5, 20, 10, 7, 15, 10], dtype=np.int64)
    # Late: index 3 (ts 10 ≤ 20), 5 (15 ≤ 20), 6 (10 again: the last arrival of (0, 10) wins).
    np.testing.assert_array_equal(late_readings(sid, ts, 2), [6, 5])


def test_a_redelivery_with_a_corrected_value_replaces_the_first_arrival() -> None:
    st_ = _state()
    sid = np.array([0, 0, 0, 0], dtype=np.int64)
    ts = np.array([T0 + 4 * k.HOUR_MS, T0 + 4 * k.HOUR_MS + MIN, T0 + 4 * k.HOUR_MS + 2 * MIN,
                   T0 + 4 * k.HOUR_MS + MIN], dtype=np.int64)
    value = np.array([100.0, 105.0, 106.0, 101.0])
    fused(st_, sid, ts, value, False, 15 * MIN)
    assert st_["today"][0] == 6.0  # 100 → 101 (the correction) → 106
    assert st_["anchor"][0] == 106.0


@pytest.mark.parametrize("integrate", [False, True])
def test_nan_readings_and_readings_older_than_the_anchor_fold_as_the_separate_kernels(integrate: bool) -> None:
    a, b = _state(), _state()
    h = T0 + 4 * k.HOUR_MS
    first = (np.array([0, 0, 0, 1, 1], dtype=np.int64), np.array([h, h + MIN, h + 2 * MIN, h, h + MIN], dtype=np.int64),
             np.array([100.0, np.nan, 104.0, 5.0, 6.0]))
    # Next batch: older than the anchors (changes nothing), a redelivery of the anchor, then on across the hour.
    second = (np.array([0, 1, 0, 0, 1], dtype=np.int64),
              np.array([h + MIN, h, h + 2 * MIN, h + 61 * MIN, h + 62 * MIN], dtype=np.int64),
              np.array([101.0, 4.0, 104.5, 110.0, 9.0]))
    for sid, ts, v in (first, second):
        assert separate(a, sid, ts, v, integrate, 15 * MIN) == fused(b, sid, ts, v, integrate, 15 * MIN)
    _assert_same(a, b)


def test_two_threads_read_only_their_segments_of_a_batch_in_long_runs_and_fold_the_same() -> None:
    # 20,000 readings, time-major in blocks of 1,024 with series 0-1 first: the two-thread fold gives each thread
    # only its segments; redeliveries and stragglers at the end must still be merged in at their place.
    rng = np.random.default_rng(7)
    n_steps = 5_000
    ts = T0 + np.arange(n_steps) * MIN
    rows = [(s, int(t), float(i * 3 + s)) for i, t in enumerate(ts) for s in range(N_SERIES)]
    rank = np.arange(len(rows))
    order = np.lexsort((rank, [r[0] >= N_SERIES // 2 for r in rows], rank // BLOCK))
    arr = [rows[i] for i in order]
    arr += [arr[i] for i in rng.integers(0, len(arr), 200)]  # redeliveries
    arr += [(s, int(T0 + MIN * k + 30_000), float(k * 3 + s) + 1.5) for s in range(N_SERIES) for k in (10, 2_000)]
    sid = np.array([r[0] for r in arr], dtype=np.int64)
    t_arr = np.array([r[1] for r in arr], dtype=np.int64)
    v = np.array([r[2] for r in arr])
    late_lo, late_hi, segments = fold._late_two_threads(sid, t_arr, np.full(N_SERIES, np.iinfo(np.int64).min))
    assert (segments[:-1, 1] == segments[1:, 0]).all() and segments[0, 0] == 0 and segments[-1, 1] == len(arr)
    one_part = segments[segments[:, 2] != fold._MIXED]
    assert one_part[:, 1].sum() - one_part[:, 0].sum() > len(rows) // 2  # most readings: one thread reads them
    assert segments[-1, 2] == fold._MIXED  # the redeliveries and stragglers at the end: both threads read them
    upper = sid >= N_SERIES // 2
    assert all(set(upper[a:z]) == {bool(p)} for a, z, p in one_part)  # each holds one part's series only
    # Each thread's late readings: its half of the series, in arrival order, not yet deduplicated.
    assert (sid[late_lo] < N_SERIES // 2).all() and (sid[late_hi] >= N_SERIES // 2).all()
    assert (np.diff(late_lo) > 0).all() and (np.diff(late_hi) > 0).all()
    late = np.concatenate([late_lo, late_hi])
    assert len({(int(sid[i]), int(t_arr[i])) for i in late}) >= 8 and len(late) >= 200
    for integrate in (False, True):
        a, c = _state(), _state()
        want = separate(a, sid, t_arr, v, integrate, 15 * MIN)
        assert fused(c, sid, t_arr, v, integrate, 15 * MIN, threads=2) == want
        _assert_same(a, c)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 3_000), st.sampled_from([1, 1_000, 2**40, 2**63 - 1]))
def test_the_late_readings_time_order_is_a_stable_sort(seed: int, n: int, span: int) -> None:
    # fold._time_order (a radix sort past 256 keys): ties keep arrival order, so the last arrival of a (series,
    # time) is the one kept; spans up to the whole int64 range.
    rng = np.random.default_rng(seed)
    key = rng.integers(-(span // 2) - 1, span // 2 + 1, n, dtype=np.int64)
    key[rng.random(n) < 0.2] = key[0] if n else 0  # ties
    if span == 2**63 - 1 and n >= 2:
        key[:2] = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    work = fold.Workspace().scratch(0, n)[4:]  # the radix sort's work arrays (longer than n: sliced to it)
    np.testing.assert_array_equal(fold._time_order(key, *work), np.argsort(key, kind="stable"))


def test_a_negative_max_gap_is_refused() -> None:
    one = np.zeros(1, dtype=np.int64)
    with pytest.raises(ValueError, match="max_gap_ms"):
        fused(_state(), one, one + T0, np.ones(1), False, -1)


def test_the_kept_work_arrays_carry_nothing_from_one_batch_to_the_next() -> None:
    # fold.Workspace keeps the fold's work arrays for the late readings from batch to batch (larger ones from an
    # earlier, larger batch); whatever they hold, a fold must give the separate kernels' result.
    work = fold._WORKSPACE
    for part in (0, 1):
        for a in work.scratch(part, 5_000):
            a.view(np.uint8)[...] = 0xA5  # garbage: NaN-like floats, huge ints
    rng = np.random.default_rng(3)
    n = 3_000
    sid = rng.integers(0, N_SERIES, n)
    ts = T0 + 4 * k.HOUR_MS + rng.permutation(n) * 1_000  # shuffled: nearly every reading is late
    v = (ts - T0) / 1_000.0 + sid
    for threads in (1, 2):
        a, b = _state(), _state()
        assert separate(a, sid, ts, v, False, 15 * MIN) == fused(b, sid, ts, v, False, 15 * MIN, threads=threads)
        _assert_same(a, b)
