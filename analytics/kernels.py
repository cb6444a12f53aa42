"""Pure numba kernels over columnar arrays: energy from counters and from power, windows, demand.

Every kernel takes plain numpy arrays and returns plain numpy arrays; no I/O, no Python objects, so
the same code runs on a micro-batch of live telemetry and on a day of history read back from InfluxDB.

Conventions shared by all kernels:

- A *series* is one quantity of one device (e.g. the `energy_import_kwh` counter of meter 17), named by
  a dense integer id `sid` in `0..n_series-1`; per-series state lives in arrays indexed by `sid`.
- Timestamps are epoch milliseconds (int64).
- A *step* is the interval `(t0, t1]` between two consecutive readings of a series and the energy
  measured (counter difference) or integrated (trapezoid of power) over it.
- Windows (1-min, 15-min, hourly, daily) are aligned to Beijing time (UTC+8), whatever the server's
  time zone: bucket `k` of width `w` covers `[k*w - 8h, (k+1)*w - 8h)` in epoch ms.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Beijing time is UTC+8 all year (no daylight saving time since 1991).
BEIJING_OFFSET_MS = 8 * 3600 * 1000
MINUTE_MS = 60_000
QUARTER_MS = 15 * MINUTE_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

# Quality of a step or of a window, ordered so that a window takes the highest of its steps.
#: nothing covers the interval
MISSING = 0
#: energy integrated from instantaneous power (no counter exists)
INTEGRATED = 1
#: energy from a cumulative counter
MEASURED = 2
#: energy from a counter across a gap longer than `max_gap_ms`: known in total, but not how it is
#: spread over the gap, so it is booked whole in the window where the gap ends (see `bucket_steps`)
GAP = 3

#: A counter falling to at most this fraction of its previous value is a reset (meter replaced or
#: cleared); a smaller drop is measurement noise of a float register and is ignored.
RESET_FRACTION = 0.5


@njit(cache=True, inline="always")
def share(delta: float, overlap: int, dt: int) -> float:
    """The part of a step's energy that falls in a window: `delta` shared by time.

    A step wholly inside the window counts exactly `delta` (`delta * dt / dt` can be one ulp off), which
    also lets the fused fold (analytics.fold) add a whole step without a division.

    Args:
        delta: the step's energy.
        overlap: ms of the step inside the window.
        dt: the step's length (ms, > 0).
    """
    return delta if overlap == dt else delta * overlap / dt


@njit(cache=True)
def _insertion_sort(order: np.ndarray, key: np.ndarray, a: int, b: int) -> None:
    # Sorts order[a:b] by key[a:b] (both permuted), stable: equal keys keep their arrival order.
    for x in range(a + 1, b):
        k = key[x]
        o = order[x]
        y = x - 1
        while y >= a and key[y] > k:
            key[y + 1] = key[y]
            order[y + 1] = order[y]
            y -= 1
        key[y + 1] = k
        order[y + 1] = o


@njit(cache=True)
def sort_dedupe(sid: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Order points by (series, time), dropping duplicates.

    A redelivered point (same series, same ts) replaces the earlier arrival, as writes to the
    database do, so the last arrival of each `(sid, ts)` is kept.

    A counting sort by series (stable, one pass), then each series' run is checked and only sorted
    by time where it arrived out of order (rare: telemetry arrives nearly in time order). Two
    comparison sorts of the whole batch cost ~30× more (profiled in bench/analytics.py).

    Args:
        sid: series id per point (int64, ≥ 0).
        ts: timestamp per point (int64, ms).

    Returns:
        Indices into the inputs (int64), sorted by `(sid, ts)`, one per distinct `(sid, ts)`.
    """
    n = sid.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.int64)
    lo = sid.min()
    m = sid.max() - lo + 1
    if m > 4 * n + 1024:  # sparse ids: comparison sorts
        by_ts = np.argsort(ts, kind="mergesort")
        order = by_ts[np.argsort(sid[by_ts], kind="mergesort")]
    else:
        start = np.zeros(m + 1, dtype=np.int64)
        for i in range(n):
            start[sid[i] - lo + 1] += 1
        for j in range(m):
            start[j + 1] += start[j]
        pos = start[:m].copy()
        order = np.empty(n, dtype=np.int64)
        t_sorted = np.empty(n, dtype=np.int64)
        for i in range(n):
            j = sid[i] - lo
            order[pos[j]] = i
            t_sorted[pos[j]] = ts[i]
            pos[j] += 1
        for j in range(m):
            a = start[j]
            b = start[j + 1]
            for x in range(a + 1, b):
                if t_sorted[x] < t_sorted[x - 1]:
                    if b - a <= 32:  # a short run (a series' late readings): insertion sort, no allocation
                        _insertion_sort(order, t_sorted, a, b)
                    else:
                        o = np.argsort(t_sorted[a:b], kind="mergesort")  # stable: arrival order within ties
                        order[a:b] = order[a:b][o]
                    break
    keep = np.ones(n, dtype=np.bool_)
    for i in range(n - 1):
        a = order[i]
        b = order[i + 1]
        if sid[a] == sid[b] and ts[a] == ts[b]:
            keep[i] = False
    return order[keep]


@njit(cache=True)
def counter_steps(
    sid: np.ndarray,
    ts: np.ndarray,
    value: np.ndarray,
    modulus: np.ndarray,
    max_gap_ms: int,
    anchor_value: np.ndarray,
    anchor_ts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energy per step from cumulative counters, with resets, rollovers and gaps.

    Points must be sorted by `(sid, ts)` without duplicates (`sort_dedupe`). Each series continues
    from its anchor (the last reading taken into account), so consecutive micro-batches chain;
    the anchors are updated in place.

    - rise: the difference.
    - 32-bit rollover: the value drops by more than half the series' `modulus` (2^32 × scale of a
      uint32 register, 0 = cannot roll over): the modulus is added back.
    - reset (meter replaced): the value drops to at most `RESET_FRACTION` of the previous one: the
      new value counts from 0.
    - any smaller drop is noise: no energy, and the anchor keeps the higher value so the rise back
      is not counted twice.
    - a point not newer than the anchor (late or already counted) adds nothing.
    - a step longer than `max_gap_ms` is flagged `GAP`.

    Args:
        sid: series id per point.
        ts: timestamp per point (ms).
        value: counter reading per point.
        modulus: per series, the value at which the register wraps (0: none).
        max_gap_ms: longest step still considered continuous.
        anchor_value: per series, last reading (NaN: none yet); updated.
        anchor_ts: per series, time of the last reading; updated.

    Returns:
        `(t0, delta, quality)` per point: the step `(t0, ts[i]]`, its energy, and `MEASURED`,
        `GAP`, or `MISSING` for a point that only sets the anchor.
    """
    n = ts.shape[0]
    t0 = np.empty(n, dtype=np.int64)  # every element written below: no zeroing pass
    delta = np.empty(n)
    quality = np.empty(n, dtype=np.int8)
    for i in range(n):
        s = sid[i]
        v = value[i]
        t = ts[i]
        a = anchor_value[s]
        at = anchor_ts[s]
        t0[i] = t
        delta[i] = 0.0
        quality[i] = MISSING
        if np.isnan(a):
            anchor_value[s] = v
            anchor_ts[s] = t
            continue
        if t <= at:
            continue
        d = v - a
        if d < 0.0:
            m = modulus[s]
            if m > 0.0 and -d > 0.5 * m:
                d += m
            elif v <= RESET_FRACTION * a:
                d = v
            else:
                anchor_ts[s] = t  # noise: keep the higher value as reference
                continue
        t0[i] = at
        delta[i] = d
        quality[i] = GAP if t - at > max_gap_ms else MEASURED
        anchor_value[s] = v
        anchor_ts[s] = t
    return t0, delta, quality


@njit(cache=True)
def power_steps(
    sid: np.ndarray,
    ts: np.ndarray,
    power_kw: np.ndarray,
    max_gap_ms: int,
    anchor_power: np.ndarray,
    anchor_ts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energy per step by trapezoidal integration of power, for series without a counter.

    Points must be sorted by `(sid, ts)` without duplicates. A step longer than `max_gap_ms`
    integrates nothing (`MISSING`): the power in between is unknown. Anchors chain micro-batches.

    Args:
        sid: series id per point.
        ts: timestamp per point (ms).
        power_kw: power per point (already oriented and clipped by the caller, e.g. import ≥ 0).
        max_gap_ms: longest step that is integrated.
        anchor_power: per series, last power (NaN: none yet); updated.
        anchor_ts: per series, time of the last power; updated.

    Returns:
        `(t0, delta_kwh, quality)` per point, quality `INTEGRATED` or `MISSING`.
    """
    n = ts.shape[0]
    t0 = ts.copy()
    delta = np.zeros(n)
    quality = np.zeros(n, dtype=np.int8)
    for i in range(n):
        s = sid[i]
        p = power_kw[i]
        t = ts[i]
        a = anchor_power[s]
        at = anchor_ts[s]
        if not np.isnan(a) and t <= at:
            continue
        anchor_power[s] = p
        anchor_ts[s] = t
        if np.isnan(a):
            continue
        t0[i] = at
        if t - at <= max_gap_ms:
            delta[i] = 0.5 * (a + p) * (t - at) / HOUR_MS
            quality[i] = INTEGRATED
    return t0, delta, quality


@njit(cache=True)
def bucket_of(ts: np.ndarray, width_ms: int) -> np.ndarray:
    """Index of the Beijing-aligned window of width `width_ms` holding each timestamp.

    Args:
        ts: timestamps (ms).
        width_ms: window width; a divisor of a day (1 min, 15 min, 1 h, 1 day).
    """
    return (ts + BEIJING_OFFSET_MS) // width_ms


@njit(cache=True)
def bucket_start_ms(index: np.ndarray, width_ms: int) -> np.ndarray:
    """Epoch ms at which Beijing-aligned window `index` of width `width_ms` starts."""
    return index * width_ms - BEIJING_OFFSET_MS


@njit(cache=True)
def bucket_steps(
    sid: np.ndarray,
    t0: np.ndarray,
    t1: np.ndarray,
    delta: np.ndarray,
    quality: np.ndarray,
    n_series: int,
    first_bucket: int,
    n_buckets: int,
    width_ms: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Spread steps over Beijing-aligned windows.

    A continuous step (`MEASURED`, `INTEGRATED`) crossing window edges is shared in proportion to
    time (it is short, so the power is near constant). A `GAP` step that lies inside one window
    belongs to it entirely (the window's energy is exact); one that spans windows is booked whole in
    the window where the gap ends, flagged `GAP`, and `span_first` says where the gap began: no
    energy is invented for the windows in between, which stay `MISSING`.

    Args:
        sid, t0, t1, delta, quality: steps, as returned by `counter_steps` / `power_steps`.
        n_series: number of series (rows of the result).
        first_bucket: index (`bucket_of`) of the first window.
        n_buckets: number of windows (columns of the result); steps outside are ignored.
        width_ms: window width.

    Returns:
        `(energy, quality, covered_ms, span_first)`, each `(n_series, n_buckets)`: energy, the
        highest quality of the steps in the window, the time covered by continuous steps, and the
        index (column) of the first window of the interval whose energy is booked in the window.
    """
    energy = np.zeros((n_series, n_buckets))
    qual = np.zeros((n_series, n_buckets), dtype=np.int8)
    covered = np.zeros((n_series, n_buckets))
    span_first = np.empty((n_series, n_buckets), dtype=np.int64)
    for s in range(n_series):
        for b in range(n_buckets):
            span_first[s, b] = b
    for i in range(t1.shape[0]):
        q = quality[i]
        if q == MISSING:
            continue
        s = sid[i]
        a = t0[i]
        z = t1[i]
        b0 = (a + BEIJING_OFFSET_MS) // width_ms - first_bucket
        b1 = (z - 1 + BEIJING_OFFSET_MS) // width_ms - first_bucket
        if q == GAP and b0 != b1:
            if 0 <= b1 < n_buckets:
                energy[s, b1] += delta[i]
                qual[s, b1] = GAP
                span_first[s, b1] = min(span_first[s, b1], b0)
            continue
        # A gap inside a single window counts like a measured step: its energy is exact there.
        if q == GAP:
            q = MEASURED
        dt = z - a
        lo = max(b0, 0)
        hi = min(b1, n_buckets - 1)
        for b in range(lo, hi + 1):
            start = (first_bucket + b) * width_ms - BEIJING_OFFSET_MS
            overlap = min(z, start + width_ms) - max(a, start)
            if overlap <= 0:
                continue
            energy[s, b] += share(delta[i], overlap, dt)
            covered[s, b] += overlap
            if q > qual[s, b]:
                qual[s, b] = q
    return energy, qual, covered, span_first


@njit(cache=True)
def window_total(
    sid: np.ndarray,
    t0: np.ndarray,
    t1: np.ndarray,
    delta: np.ndarray,
    quality: np.ndarray,
    window_start: int,
    window_end: int,
    total: np.ndarray,
) -> int:
    """Add to `total[sid]` the energy of the steps that falls in `[window_start, window_end)`.

    The live "today" figures use this: continuous steps crossing an edge count in proportion, a gap
    counts only when it lies wholly inside the window (how much of an overnight outage's energy
    belongs to today is unknown, and a restart's catch-up from the day's first reading would not
    count it either).

    Args:
        sid, t0, t1, delta, quality: steps.
        window_start: start (ms, inclusive).
        window_end: end (ms, exclusive).
        total: per-series totals; updated in place.

    Returns:
        The number of gap steps left out because they cross the window's edge.
    """
    left_out = 0
    for i in range(t1.shape[0]):
        q = quality[i]
        if q == MISSING:
            continue
        a = t0[i]
        z = t1[i]
        if z <= window_start or a >= window_end:
            continue
        if q == GAP:
            if a >= window_start and z <= window_end:
                total[sid[i]] += delta[i]
            else:
                left_out += 1
            continue
        overlap = min(z, window_end) - max(a, window_start)
        total[sid[i]] += share(delta[i], overlap, z - a)
    return left_out


@njit(cache=True)
def demand_kw(energy_kwh: np.ndarray, covered_ms: np.ndarray, quality: np.ndarray, width_ms: int,
              min_coverage: float) -> np.ndarray:
    """Average power (demand) per window, e.g. the 15-minute demand of a tariff meter.

    The average over the covered part of the window; NaN where less than `min_coverage` of the
    window is covered or the window holds a gap's energy (whose spread in time is unknown).

    Args:
        energy_kwh: energy per window, `(n_series, n_buckets)`.
        covered_ms: time covered by continuous steps per window.
        quality: quality per window.
        width_ms: window width.
        min_coverage: fraction of the window that must be covered (0..1).
    """
    out = np.full(energy_kwh.shape, np.nan)
    for s in range(energy_kwh.shape[0]):
        for b in range(energy_kwh.shape[1]):
            c = covered_ms[s, b]
            if quality[s, b] == GAP or c <= 0 or c < min_coverage * width_ms:
                continue
            out[s, b] = energy_kwh[s, b] * HOUR_MS / c
    return out


@njit(cache=True)
def max_demand(demand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The maximum demand per series and the window where it occurred (-1 and NaN if none)."""
    n_series, n_buckets = demand.shape
    peak = np.full(n_series, np.nan)
    where = np.full(n_series, -1, dtype=np.int64)
    for s in range(n_series):
        for b in range(n_buckets):
            d = demand[s, b]
            if not np.isnan(d) and (where[s] < 0 or d > peak[s]):
                peak[s] = d
                where[s] = b
    return peak, where


@njit(cache=True)
def latest_values(
    idx: np.ndarray, ts: np.ndarray, value: np.ndarray, last_value: np.ndarray, last_ts: np.ndarray
) -> None:
    """Keep, per index, the value with the newest timestamp (ties: the later arrival).

    Args:
        idx: slot per point (e.g. device index).
        ts: timestamp per point (ms).
        value: value per point.
        last_value: per slot, current value; updated in place.
        last_ts: per slot, its timestamp (int64 min: none); updated in place.
    """
    for i in range(idx.shape[0]):
        k = idx[i]
        if ts[i] >= last_ts[k]:
            last_ts[k] = ts[i]
            last_value[k] = value[i]


@njit(cache=True)
def add_to_buckets(
    sid: np.ndarray,
    t0: np.ndarray,
    t1: np.ndarray,
    delta: np.ndarray,
    quality: np.ndarray,
    row_of: np.ndarray,
    first_bucket: int,
    width_ms: int,
    energy: np.ndarray,
    covered: np.ndarray,
    qual: np.ndarray,
) -> int:
    """Add steps into preallocated Beijing-aligned windows, in place (the streaming form of `bucket_steps`).

    Same booking rules as `bucket_steps`: continuous steps shared by time, a gap inside one window
    counts there, a gap spanning windows is booked whole in the window where it ends (flagged `GAP`).

    Args:
        sid, t0, t1, delta, quality: steps.
        row_of: per series, its row in the arrays (-1: the series is not kept).
        first_bucket: `bucket_of` index of column 0.
        width_ms: window width.
        energy: `(rows, n_buckets)` energy; updated.
        covered: `(rows, n_buckets)` time covered by continuous steps (ms); updated.
        qual: `(rows, n_buckets)` highest quality; updated.

    Returns:
        The number of steps (or parts of steps) that fell outside the columns and were dropped.
    """
    n_buckets = energy.shape[1]
    dropped = 0
    for i in range(t1.shape[0]):
        q = quality[i]
        if q == MISSING:
            continue
        r = row_of[sid[i]]
        if r < 0:
            continue
        a = t0[i]
        z = t1[i]
        b0 = (a + BEIJING_OFFSET_MS) // width_ms - first_bucket
        b1 = (z - 1 + BEIJING_OFFSET_MS) // width_ms - first_bucket
        if q == GAP and b0 != b1:
            if 0 <= b1 < n_buckets:
                energy[r, b1] += delta[i]
                qual[r, b1] = GAP
            else:
                dropped += 1
            continue
        if q == GAP:
            q = MEASURED
        if b0 < 0 or b1 >= n_buckets:
            dropped += 1
        dt = z - a
        lo = max(b0, 0)
        hi = min(b1, n_buckets - 1)
        for b in range(lo, hi + 1):
            start = (first_bucket + b) * width_ms - BEIJING_OFFSET_MS
            overlap = min(z, start + width_ms) - max(a, start)
            if overlap <= 0:
                continue
            energy[r, b] += share(delta[i], overlap, dt)
            covered[r, b] += overlap
            if q > qual[r, b] and qual[r, b] != GAP:
                qual[r, b] = q
    return dropped


@njit(cache=True)
def group_demand(demand: np.ndarray, group_of_row: np.ndarray, n_groups: int) -> np.ndarray:
    """Coincident demand of groups (enterprise, park): the sum of their rows' demand per window.

    A window where any member row has no demand (NaN: incomplete, or a gap) has none for the group:
    a sum over part of the meters would understate it.

    Args:
        demand: `(rows, n_buckets)` demand per row (NaN: unknown).
        group_of_row: group index per row.
        n_groups: number of groups.
    """
    out = np.zeros((n_groups, demand.shape[1]))
    has = np.zeros(n_groups, dtype=np.bool_)
    for r in range(demand.shape[0]):
        g = group_of_row[r]
        has[g] = True
        for b in range(demand.shape[1]):
            out[g, b] += demand[r, b]
    for g in range(n_groups):
        if not has[g]:
            out[g, :] = np.nan
    return out


def month_start_ms(now_ms: int) -> int:
    """Epoch ms of 00:00 Beijing time on the first day of the month holding `now_ms`."""
    y, m = _beijing_year_month(now_ms)
    return _beijing_month_start(y, m)


def next_month_start_ms(now_ms: int) -> int:
    """Epoch ms of 00:00 Beijing time on the first day of the month after the one holding `now_ms`."""
    y, m = _beijing_year_month(now_ms)
    return _beijing_month_start(y + m // 12, m % 12 + 1)


def _beijing_year_month(now_ms: int) -> tuple[int, int]:
    import datetime as _dt

    t = _dt.datetime.fromtimestamp((now_ms + BEIJING_OFFSET_MS) / 1000, _dt.UTC)
    return t.year, t.month


def _beijing_month_start(year: int, month: int) -> int:
    import datetime as _dt

    return int(_dt.datetime(year, month, 1, tzinfo=_dt.UTC).timestamp()) * 1000 - BEIJING_OFFSET_MS


def warm_up() -> None:
    """Compile (or load from the cache) every kernel with the argument types the service uses.

    Call it in a worker thread before the first batch, so compilation never stalls the event loop.
    """
    i64, f64, i8 = np.int64, np.float64, np.int8
    sid = np.zeros(2, dtype=i64)
    ts = np.array([0, MINUTE_MS], dtype=i64)
    v = np.array([1.0, 2.0])
    order = sort_dedupe(sid, ts)
    anchor, anchor_ts = np.full(1, np.nan), np.zeros(1, dtype=i64)
    t0, d, q = counter_steps(sid[order], ts[order], v[order], np.zeros(1), MINUTE_MS, anchor, anchor_ts)
    power_steps(sid, ts, v, MINUTE_MS, np.full(1, np.nan), np.zeros(1, dtype=i64))
    bucket_steps(sid, t0, ts, d, q, 1, 0, 1, HOUR_MS)
    window_total(sid, t0, ts, d, q, 0, DAY_MS, np.zeros(1))
    e, c, qq = np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2), dtype=i8)
    add_to_buckets(sid, t0, ts, d, q, np.zeros(1, dtype=i64), 0, HOUR_MS, e, c, qq)
    dem = demand_kw(e, c, qq, QUARTER_MS, 0.9)
    max_demand(dem)
    group_demand(dem, np.zeros(1, dtype=i64), 1)
    latest_values(sid, ts, v.astype(f64), np.zeros(1), np.zeros(1, dtype=i64))
    bucket_of(ts, HOUR_MS)
    bucket_start_ms(ts, HOUR_MS)
    from analytics.fold import warm_up as warm_up_fold  # the fused kernel builds on these ones

    warm_up_fold()
