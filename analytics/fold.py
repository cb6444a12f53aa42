"""One-pass folding of a micro-batch of readings into the streaming windows (the fused hot path).

`fold_batch` does, in one kernel, what `kernels.sort_dedupe` → `kernels.counter_steps` (or
`kernels.power_steps`) → `kernels.window_total` (today, month) → `kernels.add_to_buckets` (hourly, 15-minute)
do one after the other, with the same results to the last bit (tests/analytics/test_fold.py): every
accumulator receives the same additions in the same order, because each one belongs to a single series
and a series' steps are taken in time order either way.

Why it is fast: streams arrive time-ordered per series, so a batch needs no sort. A first pass over
`(sid, ts)` finds the *late* readings (not newer than an earlier arrival of their series: redeliveries,
out-of-order points); only those are sorted (usually ~1 % of the batch). The second pass walks the batch in
arrival order and, per series, merges its late readings in where they belong in time (a late reading with
the same timestamp as an earlier arrival replaces it: the last arrival wins, as in `sort_dedupe`). No
permutation, no gathered copies, no per-step temporaries: the per-series state (anchors, the window being
filled) stays in cache and each reading is read twice, sequentially.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from analytics.kernels import (
    BEIJING_OFFSET_MS,
    GAP,
    HOUR_MS,
    INTEGRATED,
    MEASURED,
    MISSING,
    QUARTER_MS,
    RESET_FRACTION,
    sort_dedupe,
)

_NO_TS = np.iinfo(np.int64).min
_END_TS = np.iinfo(np.int64).max


@njit(cache=True, inline="always")
def _window_add(s: int, a: int, z: int, d: float, q: int, start: int, end: int, total: np.ndarray) -> int:
    # kernels.window_total for one step; returns 1 for a gap left out because it crosses an edge.
    if z <= start or a >= end:
        return 0
    if q == GAP:
        if a >= start and z <= end:
            total[s] += d
            return 0
        return 1
    overlap = min(z, end) - max(a, start)
    total[s] += d * overlap / (z - a)
    return 0


@njit(cache=True, inline="always")
def _bucket_add(r: int, a: int, z: int, d: float, q: int, first_bucket: int, width_ms: int, energy: np.ndarray,
                covered: np.ndarray, qual: np.ndarray) -> int:
    # kernels.add_to_buckets for one step (width_ms is a constant at every call: the divisions become multiplies).
    n_buckets = energy.shape[1]
    b0 = (a + BEIJING_OFFSET_MS) // width_ms - first_bucket
    b1 = (z - 1 + BEIJING_OFFSET_MS) // width_ms - first_bucket
    if q == GAP and b0 != b1:
        if 0 <= b1 < n_buckets:
            energy[r, b1] += d
            qual[r, b1] = GAP
            return 0
        return 1
    if q == GAP:
        q = MEASURED
    dropped = 0
    if b0 < 0 or b1 >= n_buckets:
        dropped = 1
    dt = z - a
    lo = max(b0, 0)
    hi = min(b1, n_buckets - 1)
    for b in range(lo, hi + 1):
        start = (first_bucket + b) * width_ms - BEIJING_OFFSET_MS
        overlap = min(z, start + width_ms) - max(a, start)
        if overlap <= 0:
            continue
        energy[r, b] += d * overlap / dt
        covered[r, b] += overlap
        if q > qual[r, b] and qual[r, b] != GAP:
            qual[r, b] = q
    return dropped


@njit(cache=True, inline="always")
def _give_back(s: int, r: int, hc: int, qc: int, cur: np.ndarray, curq: np.ndarray,
               hour: tuple[np.ndarray, np.ndarray, np.ndarray], quarter: tuple[np.ndarray, np.ndarray, np.ndarray]
               ) -> None:
    hour[0][s, hc] = cur[s, 0]
    hour[1][s, hc] = cur[s, 1]
    hour[2][s, hc] = curq[s, 0]
    if r >= 0:
        quarter[0][r, qc] = cur[s, 2]
        quarter[1][r, qc] = cur[s, 3]
        quarter[2][r, qc] = curq[s, 1]


@njit(cache=True)
def late_readings(sid: np.ndarray, ts: np.ndarray, n_series: int) -> np.ndarray:
    """Indices of the readings not newer than an earlier arrival of the same series, sorted by `(sid, ts)`,
    one per distinct `(sid, ts)` (the last arrival).

    Args:
        sid: series id per reading (0 .. n_series-1).
        ts: timestamp per reading (ms).
        n_series: number of series.
    """
    n = sid.shape[0]
    newest = np.full(n_series, _NO_TS, dtype=np.int64)
    buf = np.empty(min(n, 1024 + n // 64), dtype=np.int64)
    m = 0
    for i in range(n):
        s = sid[i]
        t = ts[i]
        if t > newest[s]:
            newest[s] = t
            continue
        if m == buf.shape[0]:
            grown = np.empty(min(n, 2 * m), dtype=np.int64)
            grown[:m] = buf
            buf = grown
        buf[m] = i
        m += 1
    late = buf[:m]
    return late[sort_dedupe(sid[late], ts[late])]


@njit(cache=True, inline="always")
def _step(integrate: bool, m: float, max_gap_ms: int, s: int, t: int, v: float, anchor_value: np.ndarray,
          anchor_ts: np.ndarray) -> tuple[int, float]:
    # One reading of series s against its anchor: kernels.counter_steps / kernels.power_steps for one point.
    a = anchor_value[s]
    at = anchor_ts[s]
    if integrate:
        if np.isnan(a) or t > at:
            anchor_value[s] = v
            anchor_ts[s] = t
            if not np.isnan(a) and t - at <= max_gap_ms:
                return INTEGRATED, 0.5 * (a + v) * (t - at) / HOUR_MS
        return MISSING, 0.0
    if np.isnan(a):
        anchor_value[s] = v
        anchor_ts[s] = t
        return MISSING, 0.0
    if t <= at:
        return MISSING, 0.0
    d = v - a
    anchor_ts[s] = t
    if d < 0.0:
        if m > 0.0 and -d > 0.5 * m:
            d += m
        elif v <= RESET_FRACTION * a:
            d = v
        else:
            return MISSING, 0.0  # noise: keep the higher value as reference
    anchor_value[s] = v
    return (GAP if t - at > max_gap_ms else MEASURED), d


@njit(cache=True, inline="always")
def _book_fast(s: int, at: int, t: int, d: float, q: int, has_quarter: bool, today: np.ndarray, month: np.ndarray,
               cur: np.ndarray, curq: np.ndarray) -> None:
    # A continuous step inside every window and inside the cells being filled: no division by a width.
    dt = t - at
    x = d * dt / dt  # what kernels.window_total / add_to_buckets add for a step wholly inside a window
    today[s] += x
    month[s] += x
    cur[s, 0] += x
    cur[s, 1] += dt
    if q > curq[s, 0] and curq[s, 0] != GAP:
        curq[s, 0] = q
    if has_quarter:
        cur[s, 2] += x
        cur[s, 3] += dt
        if q > curq[s, 1] and curq[s, 1] != GAP:
            curq[s, 1] = q


@njit(cache=True)
def _book_slow(s: int, at: int, t: int, d: float, q: int, demand_row: np.ndarray, clock: tuple[int, ...],
               today: np.ndarray, month: np.ndarray, hour: tuple[np.ndarray, np.ndarray, np.ndarray],
               quarter: tuple[np.ndarray, np.ndarray, np.ndarray], cells: tuple[np.ndarray, ...],
               cur: np.ndarray, curq: np.ndarray) -> tuple[int, int]:
    # Any other step: hand the cells back, book the step with the general rules, take the next cells.
    day_start, day_end, month_start, month_end, first_hour, first_quarter = clock
    lo, hi, hcol, qcol = cells
    r = demand_row[s]
    if hi[s] != _NO_TS:
        _give_back(s, r, hcol[s], qcol[s], cur, curq, hour, quarter)
        hi[s] = _NO_TS
    left_out = 0
    dropped = 0
    if q != MISSING:
        left_out = _window_add(s, at, t, d, q, day_start, day_end, today)
        _window_add(s, at, t, d, q, month_start, month_end, month)
        dropped = _bucket_add(s, at, t, d, q, first_hour, HOUR_MS, hour[0], hour[1], hour[2])
        if r >= 0:
            _bucket_add(r, at, t, d, q, first_quarter, QUARTER_MS, quarter[0], quarter[1], quarter[2])
    _take_cells(s, t, r, clock, hour, quarter, cells, cur, curq)
    return left_out, dropped


@njit(cache=True, inline="always")
def _take_cells(s: int, t: int, r: int, clock: tuple[int, ...], hour: tuple[np.ndarray, np.ndarray, np.ndarray],
                quarter: tuple[np.ndarray, np.ndarray, np.ndarray], cells: tuple[np.ndarray, ...], cur: np.ndarray,
                curq: np.ndarray) -> None:
    # Cache the cells holding time t (the anchor the next step starts from) if they lie inside today and the month.
    day_start, day_end, month_start, month_end, first_hour, first_quarter = clock
    lo, hi, hcol, qcol = cells
    hb = (t + BEIJING_OFFSET_MS) // HOUR_MS
    h_lo = hb * HOUR_MS - BEIJING_OFFSET_MS
    c_lo = max(h_lo, day_start, month_start)
    c_hi = min(h_lo + HOUR_MS, day_end, month_end)
    hc = hb - first_hour
    qc = 0
    if r >= 0:
        qb = (t + BEIJING_OFFSET_MS) // QUARTER_MS
        q_lo = qb * QUARTER_MS - BEIJING_OFFSET_MS
        c_lo = max(c_lo, q_lo)
        c_hi = min(c_hi, q_lo + QUARTER_MS)
        qc = qb - first_quarter
        if not 0 <= qc < quarter[0].shape[1]:
            return
    if c_lo != h_lo or c_hi <= c_lo or not 0 <= hc < hour[0].shape[1] or t < c_lo:
        return
    lo[s] = c_lo
    hi[s] = c_hi
    hcol[s] = hc
    qcol[s] = qc
    cur[s, 0] = hour[0][s, hc]
    cur[s, 1] = hour[1][s, hc]
    curq[s, 0] = hour[2][s, hc]
    if r >= 0:
        cur[s, 2] = quarter[0][r, qc]
        cur[s, 3] = quarter[1][r, qc]
        curq[s, 1] = quarter[2][r, qc]


@njit(cache=True)
def fold_batch(
    sid: np.ndarray,
    ts: np.ndarray,
    value: np.ndarray,
    integrate: bool,
    modulus: np.ndarray,
    max_gap_ms: int,
    anchor_value: np.ndarray,
    anchor_ts: np.ndarray,
    day_start: int,
    day_end: int,
    today: np.ndarray,
    month_start: int,
    month_end: int,
    month: np.ndarray,
    first_hour: int,
    hour_energy: np.ndarray,
    hour_covered: np.ndarray,
    hour_quality: np.ndarray,
    demand_row: np.ndarray,
    first_quarter: int,
    quarter_energy: np.ndarray,
    quarter_covered: np.ndarray,
    quarter_quality: np.ndarray,
) -> tuple[int, int]:
    """Fold a batch of readings (any order, duplicates allowed) into every window of the streaming state.

    Steps are those of `kernels.counter_steps` (counters) or `kernels.power_steps` (power, `integrate`),
    booked as `kernels.window_total` (today, month) and `kernels.add_to_buckets` (hourly columns for every
    series, 15-minute columns for the series with a `demand_row`) book them. All state is updated in place.

    Args:
        sid: series id per reading (0 .. len(anchor_value)-1).
        ts: timestamp per reading (ms).
        value: counter reading, or power in kW (oriented, ≥ 0) when `integrate`.
        integrate: the readings are power, integrated by trapezoids.
        modulus: per series, where a counter wraps (0: never); unused when `integrate`.
        max_gap_ms: longest continuous step (counters: longer is `GAP`; power: longer is not integrated).
        anchor_value: per series, the last reading (NaN: none yet); updated.
        anchor_ts: per series, its time; updated.
        day_start, day_end: today's window; `today` per series is added to.
        month_start, month_end: the month's window; `month` per series is added to.
        first_hour: `kernels.bucket_of` index of hourly column 0.
        hour_energy, hour_covered, hour_quality: `(n_series, hours)` hourly columns; updated.
        demand_row: per series, its row in the 15-minute columns (-1: none).
        first_quarter: `kernels.bucket_of` index of 15-minute column 0.
        quarter_energy, quarter_covered, quarter_quality: `(rows, quarters)` 15-minute columns; updated.

    Returns:
        `(gaps_left_out, dropped)`: gap steps left out of today because they cross its edge, and steps (or
        parts) that fell outside the hourly columns.
    """
    n = sid.shape[0]
    n_series = anchor_value.shape[0]
    clock = (day_start, day_end, month_start, month_end, first_hour, first_quarter)
    hour = (hour_energy, hour_covered, hour_quality)
    quarter = (quarter_energy, quarter_covered, quarter_quality)
    late = late_readings(sid, ts, n_series)
    # Per series: the next late reading to merge (position in `late`) and its time (_END_TS: none left).
    next_late = np.zeros(n_series, dtype=np.int64)
    next_late_ts = np.full(n_series, _END_TS, dtype=np.int64)
    for p in range(late.shape[0] - 1, -1, -1):
        s = sid[late[p]]
        next_late[s] = p
        next_late_ts[s] = ts[late[p]]
    newest = np.full(n_series, _NO_TS, dtype=np.int64)
    # Per series, the cells being filled: while steps stay inside `(lo, hi]` (one hourly column, one
    # 15-minute column, inside today and the month) they are added to these copies; the cells get them back
    # when a step leaves, so every cell sees the same additions in the same order as the separate kernels.
    lo = np.zeros(n_series, dtype=np.int64)
    hi = np.full(n_series, _NO_TS, dtype=np.int64)
    cells = (lo, hi, np.zeros(n_series, dtype=np.int64), np.zeros(n_series, dtype=np.int64))
    cur = np.zeros((n_series, 4))  # hour energy, hour covered, quarter energy, quarter covered
    curq = np.zeros((n_series, 2), dtype=np.int8)  # hour quality, quarter quality
    left_out = 0
    dropped = 0
    for i in range(n):
        s = sid[i]
        t = ts[i]
        if t <= newest[s]:
            continue  # a late reading: merged in below, at its place in the series' time order
        newest[s] = t
        while True:
            # The next reading of series s in time order: a late one before (or replacing) i, else i.
            j = i
            tj = t
            if next_late_ts[s] <= t:
                p = next_late[s]
                j = late[p]
                tj = ts[j]
                p += 1
                next_late[s] = p
                next_late_ts[s] = ts[late[p]] if p < late.shape[0] and sid[late[p]] == s else _END_TS
            at = anchor_ts[s]
            q, d = _step(integrate, modulus[s], max_gap_ms, s, tj, value[j], anchor_value, anchor_ts)
            if q != MISSING and q != GAP and at >= lo[s] and tj <= hi[s]:
                _book_fast(s, at, tj, d, q, demand_row[s] >= 0, today, month, cur, curq)
            elif q != MISSING or hi[s] == _NO_TS:
                lo_, dr_ = _book_slow(s, at, tj, d, q, demand_row, clock, today, month, hour, quarter, cells, cur,
                                      curq)
                left_out += lo_
                dropped += dr_
            if j == i or tj == t:
                break  # i itself was taken, or a later arrival with its timestamp replaced it
    for s in range(n_series):
        if hi[s] != _NO_TS:
            _give_back(s, demand_row[s], cells[2][s], cells[3][s], cur, curq, hour, quarter)
    return left_out, dropped


def warm_up() -> None:
    """Compile (or load from the cache) `fold_batch` with the argument types the streaming state uses."""
    sid = np.zeros(2, dtype=np.int64)
    ts = np.array([0, 60_000], dtype=np.int64)
    v = np.array([1.0, 2.0])
    energy, covered, qual = np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2), dtype=np.int8)
    for integrate in (False, True):
        fold_batch(sid, ts, v, integrate, np.zeros(1), 60_000, np.full(1, np.nan), np.zeros(1, dtype=np.int64),
                   0, 1, np.zeros(1), 0, 1, np.zeros(1), 0, energy, covered, qual, np.zeros(1, dtype=np.int64), 0,
                   energy, covered, qual)
