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
    buf = np.empty(n, dtype=np.int64)  # not zeroed: only the pages of the late readings get touched
    m = 0
    for i in range(n):
        s = sid[i]
        t = ts[i]
        if t > newest[s]:
            newest[s] = t
        else:
            buf[m] = i
            m += 1
    late = buf[:m]
    return late[sort_dedupe(sid[late], ts[late])]


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
    n_hours = hour_energy.shape[1]
    n_quarters = quarter_energy.shape[1]
    late = late_readings(sid, ts, n_series)
    # Per series: the next late reading to merge (position in `late`) and its time (_END_TS: none left).
    next_late = np.zeros(n_series, dtype=np.int64)
    next_late_ts = np.full(n_series, _END_TS, dtype=np.int64)
    for p in range(late.shape[0] - 1, -1, -1):
        s = sid[late[p]]
        next_late[s] = p
        next_late_ts[s] = ts[late[p]]
    newest = np.full(n_series, _NO_TS, dtype=np.int64)
    # Per series, the cells being filled: while steps stay inside `(lo, hi]` (one hourly column and, for a
    # demand series, one 15-minute column) they are added to copies of the cells, which get them back when a
    # step leaves: every cell sees the same additions in the same order as with the separate kernels.
    # Day and month edges are hour edges, so a cell lies wholly inside or wholly outside today (`in_day`).
    lo = np.zeros(n_series, dtype=np.int64)
    hi = np.full(n_series, _NO_TS, dtype=np.int64)
    hcol = np.zeros(n_series, dtype=np.int64)
    qcol = np.zeros(n_series, dtype=np.int64)
    in_day = np.zeros(n_series, dtype=np.bool_)
    in_month = np.zeros(n_series, dtype=np.bool_)
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
            # The step: kernels.counter_steps / kernels.power_steps for one reading.
            v = value[j]
            a = anchor_value[s]
            at = anchor_ts[s]
            q = MISSING
            d = 0.0
            if integrate:
                if np.isnan(a) or tj > at:
                    anchor_value[s] = v
                    anchor_ts[s] = tj
                    if not np.isnan(a) and tj - at <= max_gap_ms:
                        d = 0.5 * (a + v) * (tj - at) / HOUR_MS
                        q = INTEGRATED
            elif np.isnan(a):
                anchor_value[s] = v
                anchor_ts[s] = tj
            elif tj > at:
                d = v - a
                anchor_ts[s] = tj
                q = GAP if tj - at > max_gap_ms else MEASURED
                if d < 0.0:
                    m = modulus[s]
                    if m > 0.0 and -d > 0.5 * m:
                        d += m
                    elif v <= RESET_FRACTION * a:
                        d = v
                    else:
                        q = MISSING  # noise: keep the higher value as reference
                if q != MISSING:
                    anchor_value[s] = v
            r = demand_row[s]
            if q != MISSING and q != GAP and at >= lo[s] and tj <= hi[s]:
                # The common case: inside the cells being filled, no division by a window width.
                dt = tj - at
                x = d * dt / dt  # what window_total / add_to_buckets add for a step wholly inside a window
                if in_day[s]:
                    today[s] += x
                if in_month[s]:
                    month[s] += x
                cur[s, 0] += x
                cur[s, 1] += dt
                if q > curq[s, 0] and curq[s, 0] != GAP:
                    curq[s, 0] = q
                if r >= 0:
                    cur[s, 2] += x
                    cur[s, 3] += dt
                    if q > curq[s, 1] and curq[s, 1] != GAP:
                        curq[s, 1] = q
            elif q != MISSING or hi[s] == _NO_TS:
                if hi[s] != _NO_TS:  # hand the cells back
                    hour_energy[s, hcol[s]] = cur[s, 0]
                    hour_covered[s, hcol[s]] = cur[s, 1]
                    hour_quality[s, hcol[s]] = curq[s, 0]
                    if r >= 0:
                        quarter_energy[r, qcol[s]] = cur[s, 2]
                        quarter_covered[r, qcol[s]] = cur[s, 3]
                        quarter_quality[r, qcol[s]] = curq[s, 1]
                    hi[s] = _NO_TS
                if q != MISSING:  # the general rules
                    left_out += _window_add(s, at, tj, d, q, day_start, day_end, today)
                    _window_add(s, at, tj, d, q, month_start, month_end, month)
                    dropped += _bucket_add(s, at, tj, d, q, first_hour, HOUR_MS, hour_energy, hour_covered,
                                           hour_quality)
                    if r >= 0:
                        _bucket_add(r, at, tj, d, q, first_quarter, QUARTER_MS, quarter_energy, quarter_covered,
                                    quarter_quality)
                # Take the cells holding the anchor's time, where the next step starts.
                ta = anchor_ts[s]
                hb = (ta + BEIJING_OFFSET_MS) // HOUR_MS
                hc = hb - first_hour
                c_lo = hb * HOUR_MS - BEIJING_OFFSET_MS
                c_hi = c_lo + HOUR_MS
                qc = 0
                ok = 0 <= hc < n_hours
                if r >= 0:
                    qb = (ta + BEIJING_OFFSET_MS) // QUARTER_MS
                    qc = qb - first_quarter
                    c_lo = qb * QUARTER_MS - BEIJING_OFFSET_MS
                    c_hi = c_lo + QUARTER_MS
                    ok = ok and 0 <= qc < n_quarters
                if ok and not np.isnan(anchor_value[s]):
                    lo[s] = c_lo
                    hi[s] = c_hi
                    hcol[s] = hc
                    qcol[s] = qc
                    in_day[s] = day_start <= c_lo < day_end
                    in_month[s] = month_start <= c_lo < month_end
                    cur[s, 0] = hour_energy[s, hc]
                    cur[s, 1] = hour_covered[s, hc]
                    curq[s, 0] = hour_quality[s, hc]
                    if r >= 0:
                        cur[s, 2] = quarter_energy[r, qc]
                        cur[s, 3] = quarter_covered[r, qc]
                        curq[s, 1] = quarter_quality[r, qc]
            if j == i or tj == t:
                break  # i itself was taken, or a later arrival with its timestamp replaced it
    for s in range(n_series):
        if hi[s] != _NO_TS:
            hour_energy[s, hcol[s]] = cur[s, 0]
            hour_covered[s, hcol[s]] = cur[s, 1]
            hour_quality[s, hcol[s]] = curq[s, 0]
            r = demand_row[s]
            if r >= 0:
                quarter_energy[r, qcol[s]] = cur[s, 2]
                quarter_covered[r, qcol[s]] = cur[s, 3]
                quarter_quality[r, qcol[s]] = curq[s, 1]
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
