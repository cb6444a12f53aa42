"""Folding a micro-batch of readings into the streaming windows (the fused hot path).

`fold_batch` does, in one kernel, what `kernels.sort_dedupe` → `kernels.counter_steps` (or
`kernels.power_steps`) → `kernels.window_total` (today, month) → `kernels.add_to_buckets` (hourly, 15-minute)
do one after the other, with the same results (tests/analytics/test_fold.py): the same steps, anchors, covered
time and quality; energy sums agree to their last bits of rounding, because the kernel books a run of continuous
counter steps as the difference of its ends (one rounding where adding step after step rounds once a step).

Why it is fast: streams arrive time-ordered per series, so a batch needs no sort. A first pass over
`(sid, ts)` finds the *late* readings (not newer than the series' anchor or an earlier arrival: redeliveries,
out-of-order points); only those (usually ~1 % of the batch) are sorted, by time, and copied out as compact
records, each linked to its series' next.
Then the batch goes in chunks, in arrival order. A tight loop takes the common case, a continuous step inside
the window cells the series holds (its hour, and its quarter for a demand series), by moving the anchor in the
series' 64-byte hot row and nothing else; the run's energy is booked into the cells when it ends. It sets aside
what it cannot take, and the series' later readings in the chunk with it (so each series keeps its order).
Those are then taken in arrival order: a redelivery of the very reading (same time, same value) is passed by
from the hot row; everything else (merging a late reading in where it belongs in time — the last arrival of a
timestamp wins, as in `sort_dedupe` — rollover, reset, noise, gaps, leaving the held cells) takes the rare path,
which applies the general rules. No permutation, no gathered copies of the batch, no per-step temporaries.
Batches of `PARALLEL_MIN_READINGS` or more (backfill, catching up) are folded on two threads, each owning a
range of series. The late readings' work arrays are kept from batch to batch (`Workspace`). Measurements and
what did not pay: bench/analytics.py.
"""

from __future__ import annotations

import threading

import numpy as np
from numba import njit, prange, uint64

from analytics.kernels import (
    BEIJING_OFFSET_MS,
    GAP,
    HOUR_MS,
    INTEGRATED,
    MEASURED,
    MISSING,
    QUARTER_MS,
    RESET_FRACTION,
    share,
    sort_dedupe,
)

_NO_TS = np.iinfo(np.int64).min
_END_TS = np.iinfo(np.int64).max
_SET_ASIDE = _NO_TS + 1  # the limit of a series with a reading set aside in this chunk: all the rest follow it
_ADVANCE = _NO_TS + 2  # the limit of a series that passed a redelivery by and has yet to move to its next
_CHUNK = 4_096  # readings per chunk: the readings set aside stay in cache until taken
# Two threads: each reads alone the blocks of _BLOCK readings that hold only its half of the series; both read
# the blocks holding both halves (_MIXED), each taking its own readings.
_BLOCK = 512
_MIXED = 2
#: Batches of at least this many readings are folded on two threads (backfill, catching up); the stream's
#: micro-batches are far smaller and stay on one.
PARALLEL_MIN_READINGS = 1_000_000

# Per series, the hot row the loops work in: 8 slots, one 64-byte cache line, touched by every reading of the
# series, so it stays in cache while the batch streams through. It holds all a reading needs on the common path
# and to pass a redelivery by. Values are float64; times and positions are int64 (an int64 view of the rows).
_AV = 0  # anchor value (NaN: none)
_AT = 1  # anchor time (_NO_TS: none yet)
_LIM = 2  # newest time a reading may have to take the common path: end of the held cells, before a late one
_RUN = 3  # the run of common steps not yet booked: counters, the anchor value it starts from; power, its energy
_HI = 4  # end of the held cells (_NO_TS: none held)
_NL = 5  # row of the series' next late reading in the late records (`_late_records`)
_NLTS = 6  # its time (_END_TS: none left)
_NLV = 7  # its value
# Per series, the window sums only the rare path touches (float64).
_TODAY = 0
_MONTH = 1
_HE = 2  # energy of the held hourly cell
_QE = 3  # energy of the held 15-minute cell (demand series)
# Per series, the bookkeeping only the rare path touches (int64).
_HCOL = 0
_QCOL = 1
_TAKE_TS = 2  # anchor time when the cells were taken, less the anchor moves booked nowhere
_FLAGS = 3  # _IN_DAY | _IN_MONTH | _DEMAND
_IN_DAY = 1
_IN_MONTH = 2
_DEMAND = 4


@njit(cache=True, inline="always")
def _window_part(a: int, z: int, d: float, q: int, start: int, end: int) -> tuple[float, bool, int]:
    # kernels.window_total for one step: (amount, whether it is added, 1 for a gap left out at an edge).
    if z <= start or a >= end:
        return 0.0, False, 0
    if q == GAP:
        if a >= start and z <= end:
            return d, True, 0
        return 0.0, False, 1
    return share(d, min(z, end) - max(a, start), z - a), True, 0


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
        energy[r, b] += share(d, overlap, dt)
        covered[r, b] += overlap
        if q > qual[r, b] and qual[r, b] != GAP:
            qual[r, b] = q
    return dropped


@njit(cache=True, inline="always")
def _flush(s: int, integrate: bool, hot: np.ndarray, sums: np.ndarray, book: np.ndarray) -> None:
    # Book the run of common steps into the held cells' sums. A counter's run is continuous measured steps with
    # no rollover or reset, so its energy is the difference of its ends (one rounding, where adding every step
    # rounds once per step); power integrates, so its run is summed step by step.
    if integrate:
        d = hot[s, _RUN]
        hot[s, _RUN] = 0.0
    else:
        d = hot[s, _AV] - hot[s, _RUN]
        hot[s, _RUN] = hot[s, _AV]
    if d == 0.0:
        return
    flags = book[s, _FLAGS]
    sums[s, _HE] += d
    if flags & _IN_DAY:
        sums[s, _TODAY] += d
    if flags & _IN_MONTH:
        sums[s, _MONTH] += d
    if flags & _DEMAND:
        sums[s, _QE] += d


@njit(cache=True, inline="always")
def _hand_back(s: int, r: int, booked: float, q: int, sums: np.ndarray, book: np.ndarray, hour_energy: np.ndarray,
               hour_covered: np.ndarray, hour_quality: np.ndarray, quarter_energy: np.ndarray,
               quarter_covered: np.ndarray, quarter_quality: np.ndarray) -> None:
    # The held cells get their steps back (the run flushed first). The steps booked while held are contiguous,
    # so the time they cover is `booked` (sums of whole ms in float64 are exact: the same bits as adding each
    # step's length).
    hc = book[s, _HCOL]
    hour_energy[s, hc] = sums[s, _HE]
    if booked > 0.0:
        hour_covered[s, hc] += booked
        if q > hour_quality[s, hc] and hour_quality[s, hc] != GAP:
            hour_quality[s, hc] = q
    if r >= 0:
        qc = book[s, _QCOL]
        quarter_energy[r, qc] = sums[s, _QE]
        if booked > 0.0:
            quarter_covered[r, qc] += booked
            if q > quarter_quality[r, qc] and quarter_quality[r, qc] != GAP:
                quarter_quality[r, qc] = q


@njit(cache=True, inline="always")
def _set_limit(s: int, hot_i: np.ndarray) -> None:
    hi = hot_i[s, _HI]
    if hi == _NO_TS:
        hot_i[s, _LIM] = _NO_TS
    else:
        hot_i[s, _LIM] = min(hi, hot_i[s, _NLTS] - 1)


@njit(cache=True, inline="always")
def _common_step(s: int, t: int, v: float, integrate: bool, max_gap_ms: int, hot: np.ndarray,
                 hot_i: np.ndarray) -> bool:
    # Take reading (t, v) of series s if it is a continuous step inside the held cells with no late reading to
    # merge before it: only the anchor moves (and a power series' run), the run is booked when it ends (_flush).
    at = hot_i[s, _AT]
    av = hot[s, _AV]
    # One branch, not three: `&` evaluates every test, and 0 < t - at <= max_gap_ms is one unsigned compare
    # (wrapping: numba's integer arithmetic has no overflow flags).
    in_step = (uint64(t) - uint64(at) - uint64(1) < uint64(max_gap_ms)) & (t <= hot_i[s, _LIM])
    if integrate:
        if not (in_step & (not np.isnan(av))):
            return False
        hot[s, _RUN] += 0.5 * (av + v) * (t - at) / HOUR_MS
    elif not (in_step & (v - av >= 0.0)):
        return False
    hot[s, _AV] = v
    hot_i[s, _AT] = t
    return True


@njit(cache=True, inline="always")
def _next_late(s: int, hot: np.ndarray, hot_i: np.ndarray, late_rec: np.ndarray, late_i: np.ndarray) -> None:
    # Move the series on to its next late reading: its record holds the one after (`_late_records`).
    k = hot_i[s, _NL]
    hot_i[s, _NL] = late_i[k, 0]
    hot_i[s, _NLTS] = late_i[k, 1]
    hot[s, _NLV] = late_rec[k, 2]


@njit(cache=True)
def _time_order(key: np.ndarray, digits: np.ndarray, digits_b: np.ndarray, order: np.ndarray,
                order_b: np.ndarray) -> np.ndarray:
    # Stable argsort of `key` (int64): an LSD radix sort of key - min, 11 bits a pass, as many passes as its
    # range needs (a batch's late readings span minutes to hours: 2-3 passes): 0.3 ms for the ~50,000 late
    # readings of a thread of bench/analytics.py, where numba's merge sort took 2.9 ms. Few keys: a merge sort.
    # digits, digits_b (uint64), order, order_b (int64): work arrays at least as long as `key`; the result is
    # a slice of one of the two order arrays.
    n = key.shape[0]
    if n < 256:
        return np.argsort(key, kind="mergesort")
    lo = key.min()
    span = uint64(key.max() - lo)
    passes = 0
    while passes < 6 and (span >> uint64(11 * passes)) != uint64(0):
        passes += 1
    digits = digits[:n]  # key - lo, as the passes leave it ordered
    digits_b = digits_b[:n]
    order = order[:n]
    order_b = order_b[:n]
    count = np.zeros((passes, 2049), dtype=np.int64)
    for j in range(n):
        x = uint64(key[j] - lo)
        digits[j] = x
        for d in range(passes):
            count[d, ((x >> uint64(11 * d)) & uint64(2047)) + uint64(1)] += 1
    for j in range(n):
        order[j] = j
    for d in range(passes):
        for b in range(2048):
            count[d, b + 1] += count[d, b]
        shift = uint64(11 * d)
        for j in range(n):
            x = digits[j]
            at = count[d, (x >> shift) & uint64(2047)]
            count[d, (x >> shift) & uint64(2047)] = at + 1
            digits_b[at] = x
            order_b[at] = order[j]
        digits, digits_b = digits_b, digits
        order, order_b = order_b, order
    return order


@njit(cache=True)
def _late_records(late: np.ndarray, sid: np.ndarray, ts: np.ndarray, value: np.ndarray, part_lo: int,
                  part_hi: int, hot: np.ndarray, hot_i: np.ndarray, scratch: tuple[np.ndarray, ...]) -> np.ndarray:
    # Compact records of the late readings (`late`, of series part_lo..part_hi-1: indices in arrival order, a
    # (series, time) maybe more than once), each series' first late reading put in its hot row. A row holds what
    # a series needs when it passes the reading: its next late reading (row, time, value; the last row, the end,
    # says none left: _END_TS). Rows are in time order (stable: of one (series, time), the last arrival's value
    # is kept, as in `sort_dedupe`), so as the streams move on in time (each series meeting its late readings in
    # time order, all series at once) the rows are read near one after another, not each a cache miss.
    n_late = late.shape[0]
    rec, a_sid, a_ts, a_value, digits, digits_b, order, order_b = scratch  # Workspace.scratch(_, n_late)
    rec = rec[:n_late + 1]
    rec_i = rec.view(np.int64)
    rec_i[n_late, 0] = n_late
    rec_i[n_late, 1] = _END_TS
    rec[n_late, 2] = 0.0
    if n_late == 0:
        return rec
    # Gathered in arrival order (the batch read forward), then put in time order (compact arrays, in cache).
    a_ts = a_ts[:n_late]
    for p in range(n_late):
        i = late[p]
        a_sid[p] = sid[i]
        a_ts[p] = ts[i]
        a_value[p] = value[i]
    order = _time_order(a_ts, digits, digits_b, order, order_b)
    # Per series while linking: its last row so far, and where that row's value is kept (the row before, or -1:
    # the hot row), for a later arrival of the same time to replace.
    tail = np.full(part_hi - part_lo, -1, dtype=np.int64)
    before = np.empty(part_hi - part_lo, dtype=np.int64)
    for q in range(n_late):
        p = order[q]
        s = a_sid[p]
        t = a_ts[p]
        v = a_value[p]
        j = s - part_lo
        r = tail[j]
        if r < 0:
            hot_i[s, _NL] = q
            hot_i[s, _NLTS] = t
            hot[s, _NLV] = v
            before[j] = -1
        elif t == a_ts[order[r]]:
            if before[j] < 0:
                hot[s, _NLV] = v
            else:
                rec[before[j], 2] = v
            continue  # row q is left unused
        else:
            rec_i[r, 0] = q
            rec_i[r, 1] = t
            rec[r, 2] = v
            before[j] = r
        tail[j] = q
        rec_i[q, 0] = n_late
        rec_i[q, 1] = _END_TS
        rec[q, 2] = 0.0
    return rec


@njit(cache=True, inline="always")
def _common_chunk(c0: int, c1: int, integrate: bool, filtered: bool, part_lo: int, part_hi: int, sid: np.ndarray,
                  ts: np.ndarray, value: np.ndarray, max_gap_ms: int, hot: np.ndarray, hot_i: np.ndarray,
                  deferred: np.ndarray) -> int:
    # The common path over readings c0..c1-1 (of series part_lo..part_hi-1 when `filtered`); the readings it
    # cannot take go to `deferred` (how many is returned) and their series' limit is set aside.
    n_deferred = 0
    for i in range(uint64(c0), uint64(c1)):  # unsigned, as in _late_scan
        s = uint64(sid[i])
        if filtered and (s < uint64(part_lo) or s >= uint64(part_hi)):
            continue
        t = ts[i]
        if t <= hot_i[s, _AT]:
            continue  # late: merged in at its place in the series' time order
        if not _common_step(s, t, value[i], integrate, max_gap_ms, hot, hot_i):
            deferred[n_deferred] = i
            n_deferred += 1
            hot_i[s, _LIM] = _SET_ASIDE
    return n_deferred


@njit(cache=True, boundscheck=False, inline="always")
def _late_scan(sid: np.ndarray, ts: np.ndarray, newest: np.ndarray, buf: np.ndarray) -> int:
    # The readings not newer than `newest` of their series or an earlier arrival: their indices go to buf, how
    # many is returned; `newest` is updated. Indices are unsigned: numba then leaves out the fix-up of negative
    # indices, a third of the loop's instructions.
    m = 0
    for i in range(uint64(sid.shape[0])):
        s = uint64(sid[i])
        t = ts[i]
        if t > newest[s]:
            newest[s] = t
        else:
            buf[uint64(m)] = i
            m += 1
    return m


@njit(cache=True, boundscheck=False, inline="always")
def _late_scan_blocks(sid: np.ndarray, ts: np.ndarray, newest: np.ndarray, start: int, end: int, buf_lo: np.ndarray,
                      buf_hi: np.ndarray, first: np.ndarray, track_first: bool, split: int,
                      parts: np.ndarray) -> tuple[int, int]:
    # `_late_scan` over whole _BLOCKs (start a multiple of _BLOCK), the late readings of series below `split` to
    # buf_lo[start:], the others to buf_hi[start:] (how many of each is returned), that also notes in parts[b]
    # which halves of the series block b holds: 1 the lower, 2 the upper, 3 both (a register OR per reading).
    # With `track_first`, first[s] is the time of the series' first reading in the range. The body repeats `_late_scan`'s on purpose: the one shared as an inline function made the one-thread
    # scan 3x slower (fold on one thread 147 vs 50 ms).
    m_lo = 0
    m_hi = 0
    u_end = uint64(end)
    u_split = uint64(split)
    for b0 in range(uint64(start), u_end, uint64(_BLOCK)):
        seen = 0
        for i in range(b0, min(u_end, b0 + uint64(_BLOCK))):
            s = uint64(sid[i])
            t = ts[i]
            upper = s >= u_split
            seen |= 2 if upper else 1
            old = newest[s]
            if t > old:
                newest[s] = t
                if track_first and old == _NO_TS:
                    first[s] = t
            elif upper:
                buf_hi[uint64(start + m_hi)] = i
                m_hi += 1
            else:
                buf_lo[uint64(start + m_lo)] = i
                m_lo += 1
        parts[b0 // uint64(_BLOCK)] = seen
    return m_lo, m_hi


@njit(cache=True, boundscheck=False)
def _late(sid: np.ndarray, ts: np.ndarray, newest: np.ndarray) -> np.ndarray:
    # Indices of the late readings (not newer than `newest` of their series or an earlier arrival), in arrival
    # order. `newest` is updated.
    n = sid.shape[0]
    buf = np.empty(n, dtype=np.int64)  # not zeroed: only the pages of the late readings get touched
    m = _late_scan(sid, ts, newest, buf)
    return buf[:m].copy()  # not a view: it would keep the whole buffer alive


@njit(cache=True)
def _segments(parts: np.ndarray, n: int) -> np.ndarray:
    # Rows [start, end, part] of the runs of blocks holding one half of the series (part 0 or 1) or both
    # (_MIXED), from `_late_scan_blocks`' parts per block.
    out = np.empty((parts.shape[0], 3), dtype=np.int64)
    m = 0
    for b in range(parts.shape[0]):
        part = parts[b] - 1  # 0, 1, or 2 = _MIXED
        if m > 0 and out[m - 1, 2] == part:
            out[m - 1, 1] = min(n, (b + 1) * _BLOCK)
        else:
            out[m, 0] = b * _BLOCK
            out[m, 1] = min(n, (b + 1) * _BLOCK)
            out[m, 2] = part
            m += 1
    return out[:m]


@njit(cache=True, boundscheck=False, parallel=True)
def _late_two_threads(sid: np.ndarray, ts: np.ndarray,
                      newest: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # `_late` with the batch's halves scanned at once: the late readings of the lower and of the upper half of
    # the series (each thread's), each in arrival order, and the batch cut into segments (`_segments`). The
    # second half starts from nothing; its readings that came before any later reading of their series there
    # were compared with nothing from the first half, and they are the series' first readings in it: if any is
    # not newer than the first half's newest of its series (rare: streams move forward), the second half is
    # scanned again, from the first half's newest. `newest` is left as the first half (or that rescan) made it;
    # nothing reads it afterwards.
    n = sid.shape[0]
    h = n // 2 // _BLOCK * _BLOCK
    split = newest.shape[0] // 2
    buf_lo = np.empty(n, dtype=np.int64)  # not zeroed: only the pages of the late readings get touched
    buf_hi = np.empty(n, dtype=np.int64)
    newest_b = np.full(newest.shape[0], _NO_TS, dtype=np.int64)
    first_b = np.full(newest.shape[0], _END_TS, dtype=np.int64)
    parts = np.empty((n + _BLOCK - 1) // _BLOCK, dtype=np.int64)
    counts = np.zeros((2, 2), dtype=np.int64)
    for k in prange(2):
        if k == 0:
            counts[0, 0], counts[0, 1] = _late_scan_blocks(sid, ts, newest, 0, h, buf_lo, buf_hi, first_b, False,
                                                           split, parts)
        else:
            counts[1, 0], counts[1, 1] = _late_scan_blocks(sid, ts, newest_b, h, n, buf_lo, buf_hi, first_b, True,
                                                           split, parts)
    if np.any(first_b <= newest):
        counts[1, 0], counts[1, 1] = _late_scan_blocks(sid, ts, newest, h, n, buf_lo, buf_hi, first_b, False,
                                                       split, parts)
    late_lo = np.concatenate((buf_lo[:counts[0, 0]], buf_lo[h:h + counts[1, 0]]))
    late_hi = np.concatenate((buf_hi[:counts[0, 1]], buf_hi[h:h + counts[1, 1]]))
    return late_lo, late_hi, _segments(parts, n)


@njit(cache=True)
def late_readings(sid: np.ndarray, ts: np.ndarray, n_series: int) -> np.ndarray:
    """Indices of the readings not newer than an earlier arrival of the same series, sorted by `(sid, ts)`,
    one per distinct `(sid, ts)` (the last arrival).

    Args:
        sid: series id per reading (0 .. n_series-1).
        ts: timestamp per reading (ms).
        n_series: number of series.
    """
    late = _late(sid, ts, np.full(n_series, _NO_TS, dtype=np.int64))
    return late[sort_dedupe(sid[late], ts[late])]


@njit(cache=True)
def _chunks(segments: np.ndarray, part: int) -> np.ndarray:
    # Rows [start, end, mixed] of the chunks (at most _CHUNK readings, each inside one segment) of the segments
    # of `part` or _MIXED, in batch order.
    count = 0
    for g in range(segments.shape[0]):
        if segments[g, 2] == part or segments[g, 2] == _MIXED:
            count += (segments[g, 1] - segments[g, 0] + _CHUNK - 1) // _CHUNK
    out = np.empty((count, 3), dtype=np.int64)
    j = 0
    for g in range(segments.shape[0]):
        if segments[g, 2] == part or segments[g, 2] == _MIXED:
            for c0 in range(segments[g, 0], segments[g, 1], _CHUNK):
                out[j, 0] = c0
                out[j, 1] = min(segments[g, 1], c0 + _CHUNK)
                out[j, 2] = segments[g, 2] == _MIXED
                j += 1
    return out


@njit(cache=True, boundscheck=False, error_model="numpy")
def _fold_part(
    part_lo: int,
    part_hi: int,
    segments: np.ndarray,
    part: int,
    late: np.ndarray,
    scratch: tuple[np.ndarray, ...],
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
    # fold_batch for the series part_lo..part_hi-1, given their late readings (`_late`: in arrival order), over
    # the readings of the `segments` ([start, end, part]) of this `part` or _MIXED; in _MIXED ones the readings
    # of other series are passed over. `scratch`: work arrays for the late readings (`Workspace`).
    n = sid.shape[0]
    n_series = anchor_value.shape[0]
    n_hours = hour_energy.shape[1]
    n_quarters = quarter_energy.shape[1]
    q_cell = INTEGRATED if integrate else MEASURED  # the quality of every step booked into held cells
    # Allocated here, not passed in: LLVM then knows they alias none of the arguments, and the tight loop is
    # scheduled across its stores (passed in, the fold took 26.4 instead of 22.5 ms).
    hot = np.empty((n_series, 8))
    hot_i = hot.view(np.int64)  # the same rows, for the int64 slots (times)
    sums = np.empty((n_series, 4))
    book = np.empty((n_series, 4), dtype=np.int64)
    for s in range(part_lo, part_hi):
        has_anchor = not np.isnan(anchor_value[s])
        hot[s, _AV] = anchor_value[s]
        hot_i[s, _AT] = anchor_ts[s] if has_anchor else _NO_TS
        hot_i[s, _LIM] = _NO_TS
        hot[s, _RUN] = 0.0
        sums[s, _TODAY] = today[s]
        sums[s, _MONTH] = month[s]
        sums[s, _HE] = 0.0
        sums[s, _QE] = 0.0
        hot_i[s, _HI] = _NO_TS
        hot_i[s, _NL] = late.shape[0]  # the end record (`_late_records`)
        hot_i[s, _NLTS] = _END_TS
        hot[s, _NLV] = 0.0
        book[s, _FLAGS] = 0
    late_rec = _late_records(late, sid, ts, value, part_lo, part_hi, hot, hot_i, scratch)
    late_i = late_rec.view(np.int64)
    left_out = 0
    dropped = 0
    # The batch goes in chunks: first the common path over the chunk (a tight loop: only the anchor moves, the
    # run's energy is booked when it ends, see _flush), setting aside the readings it cannot take; then those,
    # in arrival order, through the general rules. A series with a reading set aside has the rest of its chunk
    # set aside too (its limit says _SET_ASIDE), so each series still takes its readings in order.
    deferred = np.empty(min(n, _CHUNK), dtype=np.int64)
    to_advance = np.empty(min(n, _CHUNK), dtype=np.int64)
    all_series = part_lo == 0 and part_hi == n_series
    chunks = _chunks(segments, part)
    for j in range(chunks.shape[0]):
        c0 = chunks[j, 0]
        c1 = chunks[j, 1]
        whole = all_series or chunks[j, 2] == 0
        # Four loops (power or counters, all series or a range), so that none tests either per reading.
        if integrate and whole:
            n_deferred = _common_chunk(c0, c1, True, False, part_lo, part_hi, sid, ts, value, max_gap_ms, hot,
                                       hot_i, deferred)
        elif integrate:
            n_deferred = _common_chunk(c0, c1, True, True, part_lo, part_hi, sid, ts, value, max_gap_ms, hot,
                                       hot_i, deferred)
        elif whole:
            n_deferred = _common_chunk(c0, c1, False, False, part_lo, part_hi, sid, ts, value, max_gap_ms, hot,
                                       hot_i, deferred)
        else:
            n_deferred = _common_chunk(c0, c1, False, True, part_lo, part_hi, sid, ts, value, max_gap_ms, hot,
                                       hot_i, deferred)
        # The readings set aside, in arrival order: first a redelivery passed by (a redelivery of the reading is
        # the commonest reason to stop), else the rare path. A series' next late record is likely out of cache:
        # it is read for all the series that passed one at once after the loop, so the misses overlap.
        n_to_advance = 0
        for k in range(n_deferred):
            i = deferred[k]
            s = sid[i]
            t = ts[i]
            v = value[i]
            if hot_i[s, _LIM] == _ADVANCE:  # passed a redelivery earlier in this chunk: move on now
                _next_late(s, hot, hot_i, late_rec, late_i)
                _set_limit(s, hot_i)
            if t <= hot_i[s, _AT]:
                continue  # late, as above (a reading set aside before it took this one's place)
            if hot_i[s, _NLTS] == t and hot[s, _NLV] == v:
                hot_i[s, _LIM] = hot_i[s, _HI]  # the next late reading is later than t
                if _common_step(s, t, v, integrate, max_gap_ms, hot, hot_i):
                    hot_i[s, _LIM] = _ADVANCE
                    to_advance[n_to_advance] = s
                    n_to_advance += 1
                    continue
                _next_late(s, hot, hot_i, late_rec, late_i)
            r = demand_row[s]
            while True:
                if hot_i[s, _HI] != _NO_TS:
                    _flush(s, integrate, hot, sums, book)
                # The next reading of series s in time order: a late one before (or replacing) i, else i.
                taken_late = False
                tj = t
                v = value[i]
                if hot_i[s, _NLTS] <= t:
                    tj = hot_i[s, _NLTS]
                    v = hot[s, _NLV]
                    taken_late = True
                    _next_late(s, hot, hot_i, late_rec, late_i)
                # The step: kernels.counter_steps / kernels.power_steps for one reading.
                a = hot[s, _AV]
                at = hot_i[s, _AT]  # _NO_TS (unused) while there is no anchor
                q = MISSING
                d = 0.0
                if integrate:
                    if np.isnan(a) or tj > at:
                        hot[s, _AV] = v
                        hot_i[s, _AT] = tj
                        if not np.isnan(a) and tj - at <= max_gap_ms:
                            d = 0.5 * (a + v) * (tj - at) / HOUR_MS
                            q = INTEGRATED
                elif np.isnan(a):
                    hot[s, _AV] = v
                    hot_i[s, _AT] = tj
                elif tj > at:
                    d = v - a
                    hot_i[s, _AT] = tj
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
                        hot[s, _AV] = v
                hi = hot_i[s, _HI]
                if q != MISSING and q != GAP and hi != _NO_TS and tj <= hi:
                    flags = book[s, _FLAGS]  # inside the held cells: as on the common path, booked at once
                    sums[s, _HE] += d
                    if flags & _IN_DAY:
                        sums[s, _TODAY] += d
                    if flags & _IN_MONTH:
                        sums[s, _MONTH] += d
                    if flags & _DEMAND:
                        sums[s, _QE] += d
                elif q != MISSING or hi == _NO_TS:
                    if hi != _NO_TS:  # hand the cells back
                        _hand_back(s, r, float(at - book[s, _TAKE_TS]), q_cell, sums, book, hour_energy,
                                   hour_covered, hour_quality, quarter_energy, quarter_covered, quarter_quality)
                        hot_i[s, _HI] = _NO_TS
                    if q != MISSING:  # the general rules
                        x, add, gap_left_out = _window_part(at, tj, d, q, day_start, day_end)
                        if add:
                            sums[s, _TODAY] += x
                        left_out += gap_left_out
                        x, add, gap_left_out = _window_part(at, tj, d, q, month_start, month_end)
                        if add:
                            sums[s, _MONTH] += x
                        dropped += _bucket_add(s, at, tj, d, q, first_hour, HOUR_MS, hour_energy, hour_covered,
                                               hour_quality)
                        if r >= 0:
                            _bucket_add(r, at, tj, d, q, first_quarter, QUARTER_MS, quarter_energy, quarter_covered,
                                        quarter_quality)
                    # Take the cells holding the anchor's time, where the next step starts. Day and month edges are
                    # hour edges, so a cell lies wholly inside or wholly outside today and the month.
                    if not np.isnan(hot[s, _AV]):
                        ta = hot_i[s, _AT]
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
                        if ok:
                            hot_i[s, _HI] = c_hi
                            book[s, _HCOL] = hc
                            book[s, _QCOL] = qc
                            book[s, _TAKE_TS] = ta
                            flags = 0
                            if day_start <= c_lo < day_end:
                                flags |= _IN_DAY
                            if month_start <= c_lo < month_end:
                                flags |= _IN_MONTH
                            if r >= 0:
                                flags |= _DEMAND
                                sums[s, _QE] = quarter_energy[r, qc]
                            book[s, _FLAGS] = flags
                            sums[s, _HE] = hour_energy[s, hc]
                elif hi != _NO_TS:
                    # The anchor moved by a step booked nowhere (noise, a gap in power): not covered time.
                    book[s, _TAKE_TS] += hot_i[s, _AT] - at
                # Every step of this reading is booked: the next run starts here.
                hot[s, _RUN] = 0.0 if integrate else hot[s, _AV]
                if not taken_late or tj == t:
                    break  # i itself was taken, or a later arrival with its timestamp replaced it
            _set_limit(s, hot_i)
        for k in range(n_to_advance):
            s = to_advance[k]
            if hot_i[s, _LIM] == _ADVANCE:
                _next_late(s, hot, hot_i, late_rec, late_i)
                _set_limit(s, hot_i)
    for s in range(part_lo, part_hi):
        if hot_i[s, _HI] != _NO_TS:
            _flush(s, integrate, hot, sums, book)
            _hand_back(s, demand_row[s], float(hot_i[s, _AT] - book[s, _TAKE_TS]), q_cell, sums, book,
                       hour_energy, hour_covered, hour_quality, quarter_energy, quarter_covered, quarter_quality)
        anchor_value[s] = hot[s, _AV]
        if hot_i[s, _AT] != _NO_TS:
            anchor_ts[s] = hot_i[s, _AT]
        today[s] = sums[s, _TODAY]
        month[s] = sums[s, _MONTH]
    return left_out, dropped


@njit(cache=True)
def _newest_of_anchors(anchor_value: np.ndarray, anchor_ts: np.ndarray) -> np.ndarray:
    # A reading not newer than its series' anchor or an earlier arrival is late: it is merged in at its place in
    # time (one not newer than the anchor changes nothing there). After a series' reading is taken its anchor
    # time is that reading's, so the main pass tells late readings by `ts <= anchor time` alone.
    newest = np.empty(anchor_value.shape[0], dtype=np.int64)
    for s in range(anchor_value.shape[0]):
        newest[s] = _NO_TS if np.isnan(anchor_value[s]) else anchor_ts[s]
    return newest


@njit(cache=True, parallel=True)
def _fold_two(late_lo: np.ndarray, late_hi: np.ndarray, segments: np.ndarray, scratch_lo: tuple[np.ndarray, ...],
              scratch_hi: tuple[np.ndarray, ...], sid: np.ndarray, ts: np.ndarray, value: np.ndarray, integrate: bool,
              modulus: np.ndarray, max_gap_ms: int,
              anchor_value: np.ndarray, anchor_ts: np.ndarray, day_start: int, day_end: int, today: np.ndarray,
              month_start: int, month_end: int, month: np.ndarray, first_hour: int, hour_energy: np.ndarray,
              hour_covered: np.ndarray, hour_quality: np.ndarray, demand_row: np.ndarray, first_quarter: int,
              quarter_energy: np.ndarray, quarter_covered: np.ndarray, quarter_quality: np.ndarray) -> tuple[int, int]:
    # One thread for each half of the series, given each half's late readings (`_late_two_threads`). A series'
    # state, cells and readings belong to one half, so the threads share nothing they write. Where the batch
    # comes in long runs of one half's series (a stream in time order, series by series: `segments`), each
    # thread reads only its runs; otherwise each reads the whole batch and takes only its own readings.
    n_series = anchor_value.shape[0]
    out = np.zeros((2, 2), dtype=np.int64)
    for k in prange(2):
        lo = n_series * k // 2
        hi = n_series * (k + 1) // 2
        own = late_lo if k == 0 else late_hi
        own_scratch = scratch_lo if k == 0 else scratch_hi
        left_out, dropped = _fold_part(
            lo, hi, segments, k, own, own_scratch, sid, ts, value, integrate, modulus, max_gap_ms,
            anchor_value, anchor_ts, day_start, day_end, today, month_start, month_end, month, first_hour,
            hour_energy, hour_covered, hour_quality, demand_row, first_quarter, quarter_energy, quarter_covered,
            quarter_quality)
        out[k, 0] = left_out
        out[k, 1] = dropped
    return int(out[:, 0].sum()), int(out[:, 1].sum())


class Workspace(threading.local):
    """The work arrays of the fold's late readings (`_late_records`), kept from batch to batch, a set a thread.

    Allocated afresh for every batch, they came from the fold's worker threads' malloc arenas, which gave the
    pages back after every other batch: ~1,500 page faults and +2.5 ms in the next fold of bench/analytics.py.
    Arrays for more than `KEEP_MAX_LATE` late readings (a rare, huge backfill batch) are not kept. (The hot rows
    stay allocated in `_fold_part`: see there.)
    """

    KEEP_MAX_LATE = 1 << 20

    def __init__(self) -> None:
        self._scratch: list[tuple[np.ndarray, ...] | None] = [None, None]

    def scratch(self, part: int, n_late: int) -> tuple[np.ndarray, ...]:
        """`_late_records`' work arrays for `n_late` late readings of thread `part` (0 or 1)."""
        kept = self._scratch[part]
        if kept is not None and kept[1].shape[0] >= n_late:
            return kept
        cap = max(n_late, 1_024)
        fresh = (np.empty((cap + 1, 4)), np.empty(cap, dtype=np.int64), np.empty(cap, dtype=np.int64), np.empty(cap),
                 np.empty(cap, dtype=np.uint64), np.empty(cap, dtype=np.uint64), np.empty(cap, dtype=np.int64),
                 np.empty(cap, dtype=np.int64))
        if cap <= self.KEEP_MAX_LATE:
            self._scratch[part] = fresh
        return fresh


_WORKSPACE = Workspace()


def _fold_one(sid: np.ndarray, ts: np.ndarray, value: np.ndarray, integrate: bool, modulus: np.ndarray,
              max_gap_ms: int, anchor_value: np.ndarray, anchor_ts: np.ndarray, day_start: int, day_end: int,
              today: np.ndarray, month_start: int, month_end: int, month: np.ndarray, first_hour: int,
              hour_energy: np.ndarray, hour_covered: np.ndarray, hour_quality: np.ndarray, demand_row: np.ndarray,
              first_quarter: int, quarter_energy: np.ndarray, quarter_covered: np.ndarray,
              quarter_quality: np.ndarray) -> tuple[int, int]:
    """fold_batch on one thread."""
    n_series = anchor_value.shape[0]
    late = _late(sid, ts, _newest_of_anchors(anchor_value, anchor_ts))
    whole = np.array([[0, sid.shape[0], _MIXED]], dtype=np.int64)
    left_out, dropped = _fold_part(
        0, n_series, whole, 0, late, _WORKSPACE.scratch(0, late.shape[0]), sid, ts, value,
        integrate, modulus, max_gap_ms, anchor_value, anchor_ts, day_start, day_end, today, month_start, month_end,
        month, first_hour, hour_energy, hour_covered, hour_quality, demand_row, first_quarter, quarter_energy,
        quarter_covered, quarter_quality)
    return int(left_out), int(dropped)


def _fold_parts(sid: np.ndarray, ts: np.ndarray, value: np.ndarray, integrate: bool, modulus: np.ndarray,
                max_gap_ms: int, anchor_value: np.ndarray, anchor_ts: np.ndarray, day_start: int, day_end: int,
                today: np.ndarray, month_start: int, month_end: int, month: np.ndarray, first_hour: int,
                hour_energy: np.ndarray, hour_covered: np.ndarray, hour_quality: np.ndarray, demand_row: np.ndarray,
                first_quarter: int, quarter_energy: np.ndarray, quarter_covered: np.ndarray,
                quarter_quality: np.ndarray) -> tuple[int, int]:
    """fold_batch on two threads: the late readings found with the batch's halves scanned at once, then one
    thread for each half of the series (`_fold_two`)."""
    late_lo, late_hi, segments = _late_two_threads(sid, ts, _newest_of_anchors(anchor_value, anchor_ts))
    left_out, dropped = _fold_two(
        late_lo, late_hi, segments, _WORKSPACE.scratch(0, late_lo.shape[0]),
        _WORKSPACE.scratch(1, late_hi.shape[0]), sid, ts, value, integrate, modulus, max_gap_ms, anchor_value,
        anchor_ts, day_start, day_end, today, month_start, month_end, month, first_hour, hour_energy, hour_covered,
        hour_quality, demand_row, first_quarter, quarter_energy, quarter_covered, quarter_quality)
    return int(left_out), int(dropped)


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

    Raises:
        ValueError: `max_gap_ms` is negative.
    """
    if max_gap_ms < 0:
        raise ValueError("fold_batch: max_gap_ms must be 0 or more (the common step compares it unsigned)")
    if sid.shape[0] >= PARALLEL_MIN_READINGS and anchor_value.shape[0] >= 2:
        return _fold_parts(sid, ts, value, integrate, modulus, max_gap_ms, anchor_value, anchor_ts, day_start,
                           day_end, today, month_start, month_end, month, first_hour, hour_energy, hour_covered,
                           hour_quality, demand_row, first_quarter, quarter_energy, quarter_covered, quarter_quality)
    return _fold_one(sid, ts, value, integrate, modulus, max_gap_ms, anchor_value, anchor_ts, day_start, day_end,
                     today, month_start, month_end, month, first_hour, hour_energy, hour_covered, hour_quality,
                     demand_row, first_quarter, quarter_energy, quarter_covered, quarter_quality)


def warm_up() -> None:
    """Compile (or load from the cache) `fold_batch`, one- and two-thread forms, with the argument types the
    streaming state uses."""
    sid = np.zeros(2, dtype=np.int64)
    ts = np.array([0, 60_000], dtype=np.int64)
    v = np.array([1.0, 2.0])
    energy, covered, qual = np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2), dtype=np.int8)
    for integrate in (False, True):
        fold_batch(sid, ts, v, integrate, np.zeros(1), 60_000, np.full(1, np.nan), np.zeros(1, dtype=np.int64),
                   0, 1, np.zeros(1), 0, 1, np.zeros(1), 0, energy, covered, qual, np.zeros(1, dtype=np.int64), 0,
                   energy, covered, qual)
        _fold_parts(sid, ts, v, integrate, np.zeros(1), 60_000, np.full(1, np.nan), np.zeros(1, dtype=np.int64),
                    0, 1, np.zeros(1), 0, 1, np.zeros(1), 0, energy, covered, qual, np.zeros(1, dtype=np.int64), 0,
                    energy, covered, qual)
