"""Per-device streaming state in arrays, advanced by micro-batches of decoded telemetry.

Holds, per device: latest active power and when it was read, when the device was last heard; per
counter series (device × counter field): the anchor reading the next one is compared with, the
energy since 00:00 Beijing time (today) and since the 1st of the month, and hourly windows of
yesterday, today and tomorrow; per demand series (grid meters' import counters): 15-minute windows
of the month. A new day (00:00 UTC+8) zeroes today and closes the day before yesterday, handing its
hourly windows to `on_day_closed`; a new month zeroes the month.

The live service and the backfill both advance this state with the same kernels, so a day computed
live and the same day recomputed from InfluxDB are the same numbers (tests/analytics/test_backfill.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from analytics import kernels
from analytics.devices import F_EXPORT, F_IMPORT, F_POWER, N_COUNTERS, DeviceIndex
from analytics.fold import fold_batch

NO_TS = np.iinfo(np.int64).min
HOURS_PER_DAY = 24
#: Hourly columns kept: yesterday (still open to late steps crossing midnight), today, tomorrow (clock skew).
HOURS_KEPT = 3 * HOURS_PER_DAY
#: 15-minute columns of the longest month.
QUARTERS_KEPT = 31 * 96
#: A 15-minute window counts for demand when at least this share of it is covered (completeness rule).
DEMAND_MIN_COVERAGE = 0.9


@dataclass(frozen=True, slots=True)
class ClosedDay:
    """Hourly windows of one finished day, per counter series.

    Attributes:
        start_ms: 00:00 Beijing time of the day.
        energy: `(n_series, 24)` energy per hour.
        covered_ms: `(n_series, 24)` time covered by continuous steps.
        quality: `(n_series, 24)` highest step quality (kernels.MISSING .. GAP).
    """

    start_ms: int
    energy: np.ndarray
    covered_ms: np.ndarray
    quality: np.ndarray


def day_start_ms(now_ms: int) -> int:
    """Epoch ms of the last 00:00 Beijing time (UTC+8) at or before `now_ms`, whatever the server zone."""
    return (now_ms + kernels.BEIJING_OFFSET_MS) // kernels.DAY_MS * kernels.DAY_MS - kernels.BEIJING_OFFSET_MS


@dataclass(frozen=True, slots=True, kw_only=True)
class StateLimits:
    """Time limits of the streaming state.

    Attributes:
        counter_max_gap_ms: a counter step longer than this is a gap (flagged, see kernels.GAP).
        integrate_max_gap_ms: power is not integrated across a step longer than this.
        stale_after_ms: a device silent for longer is not reporting: its power counts as 0.
    """

    counter_max_gap_ms: int = 15 * 60_000
    integrate_max_gap_ms: int = 120_000
    stale_after_ms: int = 60_000


class StreamState:
    """Streaming energy and power state of every device of a registry.

    Args:
        index: the registry's device index.
        now_ms: current time; sets the day.
        limits: gap and staleness limits.
    """

    def __init__(self, index: DeviceIndex, now_ms: int, limits: StateLimits | None = None,
                 on_day_closed: Callable[[ClosedDay], None] | None = None) -> None:
        self.index = index
        self.on_day_closed = on_day_closed
        self.limits = limits or StateLimits()
        n_dev, n_ser = index.n_devices, index.n_series
        self.power_kw = np.zeros(n_dev)
        self.power_ts = np.full(n_dev, NO_TS, dtype=np.int64)
        self.seen_ts = np.full(n_dev, NO_TS, dtype=np.int64)
        self.anchor_value = np.full(n_ser, np.nan)
        self.anchor_ts = np.full(n_ser, NO_TS, dtype=np.int64)
        self.counter_seen = np.zeros(n_ser, dtype=np.bool_)
        self.power_anchor = np.full(n_ser, np.nan)
        self.power_anchor_ts = np.full(n_ser, NO_TS, dtype=np.int64)
        self.today = np.zeros(n_ser)
        self.day_start_ms = day_start_ms(now_ms)
        self.gaps_left_out = 0
        self.dropped_late = 0
        self.hour_energy = np.zeros((n_ser, HOURS_KEPT))
        self.hour_covered = np.zeros((n_ser, HOURS_KEPT))
        self.hour_quality = np.zeros((n_ser, HOURS_KEPT), dtype=np.int8)
        self.month_start_ms = kernels.month_start_ms(now_ms)
        self.month_end_ms = kernels.next_month_start_ms(now_ms)
        self.month = np.zeros(n_ser)
        n_dem = index.n_demand
        self.quarter_energy = np.zeros((n_dem, QUARTERS_KEPT))
        self.quarter_covered = np.zeros((n_dem, QUARTERS_KEPT))
        self.quarter_quality = np.zeros((n_dem, QUARTERS_KEPT), dtype=np.int8)

    @property
    def first_hour(self) -> int:
        """`kernels.bucket_of` index of hourly column 0 (00:00 yesterday)."""
        return (self.day_start_ms - kernels.DAY_MS + kernels.BEIJING_OFFSET_MS) // kernels.HOUR_MS

    @property
    def first_quarter(self) -> int:
        """`kernels.bucket_of` index of 15-minute column 0 (00:00 on the 1st of the month)."""
        return (self.month_start_ms + kernels.BEIJING_OFFSET_MS) // kernels.QUARTER_MS

    def roll_day(self, now_ms: int) -> bool:
        """Start a new day (and month) if `now_ms` is past 00:00 UTC+8 of the next one; True if it did.

        Each day leaving the hourly columns is handed to `on_day_closed` first.
        """
        start = day_start_ms(now_ms)
        if start <= self.day_start_ms:
            return False
        days = (start - self.day_start_ms) // kernels.DAY_MS
        for j in range(min(days, 3)):
            self._close(j)
        shift = min(days, 3) * HOURS_PER_DAY
        for a in (self.hour_energy, self.hour_covered, self.hour_quality):
            a[:, : HOURS_KEPT - shift] = a[:, shift:]
            a[:, HOURS_KEPT - shift:] = 0
        self.day_start_ms = start
        self.today[:] = 0.0
        if now_ms >= self.month_end_ms:
            self.month_start_ms = kernels.month_start_ms(now_ms)
            self.month_end_ms = kernels.next_month_start_ms(now_ms)
            self.month[:] = 0.0
            for q in (self.quarter_energy, self.quarter_covered, self.quarter_quality):
                q[:] = 0
        return True

    def _close(self, j: int) -> None:
        if self.on_day_closed is None:
            return
        cols = slice(j * HOURS_PER_DAY, (j + 1) * HOURS_PER_DAY)
        self.on_day_closed(ClosedDay(
            start_ms=self.day_start_ms + (j - 1) * kernels.DAY_MS, energy=self.hour_energy[:, cols].copy(),
            covered_ms=self.hour_covered[:, cols].copy(), quality=self.hour_quality[:, cols].copy(),
        ))

    def flush_days(self) -> None:
        """Hand every day still open (yesterday, today, tomorrow) to `on_day_closed` and clear them.

        The backfill calls this at the end of its range; the live service never does.
        """
        for j in range(3):
            self._close(j)
        for a in (self.hour_energy, self.hour_covered, self.hour_quality):
            a[:] = 0

    def update(self, device: np.ndarray, ts: np.ndarray, field: np.ndarray, value: np.ndarray, now_ms: int) -> None:
        """Advance the state by one micro-batch of points (any order, duplicates allowed).

        Args:
            device: device index per value (int64).
            ts: timestamp per value (int64 ms).
            field: field code per value (`analytics.devices.FIELD_CODES`, or `F_OTHER`).
            value: the value.
            now_ms: current time (rolls the day before the batch is counted).

        A batch spanning several Beijing days (a catch-up, a replay) is folded one day at a time, each
        at the end of its day, so steps crossing a midnight are booked before that day closes.
        """
        if device.shape[0]:
            first = (int(ts.min()) + kernels.BEIJING_OFFSET_MS) // kernels.DAY_MS
            last = (int(ts.max()) + kernels.BEIJING_OFFSET_MS) // kernels.DAY_MS
            if last > first:
                day = (ts + kernels.BEIJING_OFFSET_MS) // kernels.DAY_MS
                for d in range(first, last + 1):
                    sel = day == d
                    if sel.any():
                        end = (d + 1) * kernels.DAY_MS - kernels.BEIJING_OFFSET_MS - 1
                        self._update_one(device[sel], ts[sel], field[sel], value[sel], min(now_ms, end))
                self.roll_day(now_ms)
                return
        self._update_one(device, ts, field, value, now_ms)

    def _update_one(self, device: np.ndarray, ts: np.ndarray, field: np.ndarray, value: np.ndarray,
                    now_ms: int) -> None:
        self.roll_day(now_ms)
        if device.shape[0] == 0:
            return
        kernels.latest_values(device, ts, value, np.zeros(self.index.n_devices), self.seen_ts)
        is_power = field == F_POWER
        if is_power.any():
            kernels.latest_values(device[is_power], ts[is_power], value[is_power], self.power_kw, self.power_ts)
            self._integrate(device[is_power], ts[is_power], value[is_power])
        is_counter = field < N_COUNTERS
        if is_counter.any():
            sid = device[is_counter] * N_COUNTERS + field[is_counter]
            self.counter_seen[sid] = True
            self._count(sid, ts[is_counter], value[is_counter])

    def _count(self, sid: np.ndarray, ts: np.ndarray, value: np.ndarray) -> None:
        self._fold(sid, ts, value, False, self.limits.counter_max_gap_ms, self.anchor_value, self.anchor_ts)

    def _integrate(self, device: np.ndarray, ts: np.ndarray, power: np.ndarray) -> None:
        # Import and export series of devices without counters, from power oriented per role.
        sid_parts, ts_parts, p_parts = [], [], []
        oriented = power * self.index.power_sign[device]
        for f, directed in ((F_IMPORT, np.maximum(oriented, 0.0)), (F_EXPORT, np.maximum(-oriented, 0.0))):
            sid = device * N_COUNTERS + f
            use = self.index.integrate[sid] & ~self.counter_seen[sid]
            if use.any():
                sid_parts.append(sid[use])
                ts_parts.append(ts[use])
                p_parts.append(directed[use])
        if not sid_parts:
            return
        sid, ts, p = np.concatenate(sid_parts), np.concatenate(ts_parts), np.concatenate(p_parts)
        self._fold(sid, ts, p, True, self.limits.integrate_max_gap_ms, self.power_anchor, self.power_anchor_ts)

    def _fold(self, sid: np.ndarray, ts: np.ndarray, value: np.ndarray, integrate: bool, max_gap_ms: int,
              anchor: np.ndarray, anchor_ts: np.ndarray) -> None:
        """Take the steps of one batch and add them to every window: today, the month, the hourly and the
        15-minute (demand) columns (one fused pass, see `analytics.fold`)."""
        left_out, dropped = fold_batch(
            sid, ts, value, integrate, self.index.modulus, max_gap_ms, anchor, anchor_ts,
            self.day_start_ms, self.day_start_ms + kernels.DAY_MS, self.today,
            self.month_start_ms, self.month_end_ms, self.month,
            self.first_hour, self.hour_energy, self.hour_covered, self.hour_quality,
            self.index.demand_row, self.first_quarter, self.quarter_energy, self.quarter_covered,
            self.quarter_quality,
        )
        self.gaps_left_out += left_out
        self.dropped_late += dropped

    def demand(self, now_ms: int, group_of_row: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
        """15-minute demand of groups (enterprises or parks): the last complete window's and the month's peak.

        A group's demand is coincident: the sum of its grid meters' average import power in the same
        window, unknown where any of them covers less than `DEMAND_MIN_COVERAGE` of it or holds a gap.

        Args:
            now_ms: current time; only windows ended by then count.
            group_of_row: group index per demand row (`index.demand_enterprise`, or the parks of those).
            n_groups: number of groups.

        Returns:
            `(last, month_max)` per group in kW: the demand of the window that ended last before
            `now_ms`, and the month's maximum so far (NaN where unknown or no grid meter).
        """
        per_row = kernels.demand_kw(self.quarter_energy, self.quarter_covered, self.quarter_quality,
                                    kernels.QUARTER_MS, DEMAND_MIN_COVERAGE)
        table = kernels.group_demand(per_row, group_of_row, n_groups)
        done = int(min(max((now_ms - self.month_start_ms) // kernels.QUARTER_MS, 0), QUARTERS_KEPT))
        table[:, done:] = np.nan  # the running window (and the future) is not a demand yet
        last = table[:, done - 1].copy() if done > 0 else np.full(n_groups, np.nan)
        peak, _ = kernels.max_demand(table)
        return last, peak

    def seed_today(self, device: np.ndarray, field: np.ndarray, first: np.ndarray, last: np.ndarray,
                   at_ms: int) -> None:
        """Restore today's counters after a restart from the day's first and last stored readings.

        The day's energy is `last − first` (with rollover and reset handled as in
        `kernels.counter_steps`), and `last` becomes the anchor the next live reading continues from.

        Args:
            device: device index per counter.
            field: counter field code per counter.
            first: first reading of today.
            last: last reading of today.
            at_ms: time the readings were read back (anchors' time).
        """
        sid = device * N_COUNTERS + field
        n = sid.shape[0]
        pair_sid = np.repeat(sid, 2)
        pair_ts = np.tile(np.array([at_ms - 1, at_ms], dtype=np.int64), n)
        pair_val = np.column_stack([first, last]).ravel()
        anchor_value = np.full(self.index.n_series, np.nan)
        anchor_ts = np.full(self.index.n_series, NO_TS, dtype=np.int64)
        _, delta, _ = kernels.counter_steps(
            pair_sid, pair_ts, pair_val, self.index.modulus, kernels.DAY_MS, anchor_value, anchor_ts
        )
        np.add.at(self.today, pair_sid, delta)
        np.add.at(self.month, pair_sid, delta)
        self.anchor_value[sid] = last
        self.anchor_ts[sid] = at_ms
        self.counter_seen[sid] = True

    def fresh(self, now_ms: int) -> np.ndarray:
        """Mask of devices heard within `stale_after_ms` of `now_ms`."""
        return self.seen_ts >= now_ms - self.limits.stale_after_ms

    def today_by_field(self) -> np.ndarray:
        """Today's energy as `(n_devices, N_COUNTERS)`."""
        return self.today.reshape(self.index.n_devices, N_COUNTERS)

    # --- checkpoint -----------------------------------------------------------------------------

    _ARRAYS = ("power_kw", "power_ts", "seen_ts", "anchor_value", "anchor_ts", "counter_seen", "power_anchor",
               "power_anchor_ts", "today", "month", "hour_energy", "hour_covered", "hour_quality",
               "quarter_energy", "quarter_covered", "quarter_quality")

    def export_arrays(self) -> dict[str, np.ndarray]:
        """A copy of everything the state holds, as named arrays (see `analytics.checkpoint`)."""
        out = {name: getattr(self, name).copy() for name in self._ARRAYS}
        out["clock"] = np.array([self.day_start_ms, self.month_start_ms, self.month_end_ms], dtype=np.int64)
        out["device_ids"] = np.asarray(self.index.device_ids, dtype=np.str_)
        out["demand_ids"] = np.asarray(self.index.demand_device_ids, dtype=np.str_)
        return out

    def import_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Take over the arrays of `export_arrays`; saved for another registry, they are matched by device id
        (devices kept keep their state, new ones start empty, removed ones are dropped).

        Raises:
            ValueError: the arrays do not fit this state's layout (or name no devices to match by).
        """
        saved = tuple(str(d) for d in arrays["device_ids"])
        same = saved == self.index.device_ids
        if not same and "demand_ids" not in arrays:
            raise ValueError("the checkpoint was saved for another registry (devices differ) and holds no "
                             "demand ids to match it by")
        for name in self._ARRAYS:
            mine = getattr(self, name)
            theirs = arrays[name]
            if (theirs.shape if same else theirs.shape[1:]) != (mine.shape if same else mine.shape[1:]) \
                    or theirs.dtype != mine.dtype:
                raise ValueError(f"checkpoint array {name!r} has shape {theirs.shape}, expected {mine.shape}")
        if same:
            for name in self._ARRAYS:
                getattr(self, name)[...] = arrays[name]
        else:
            self._take_matching(arrays, saved, tuple(str(d) for d in arrays["demand_ids"]))
        self.day_start_ms, self.month_start_ms, self.month_end_ms = (int(x) for x in arrays["clock"])

    _PER_DEVICE = ("power_kw", "power_ts", "seen_ts")
    _PER_DEMAND = ("quarter_energy", "quarter_covered", "quarter_quality")

    def _take_matching(self, arrays: dict[str, np.ndarray], device_ids: tuple[str, ...],
                       demand_ids: tuple[str, ...]) -> None:
        """Copy the rows of the devices (and demand series) both layouts hold, matched by device id."""
        src_dev, dst_dev = _matching(device_ids, self.index.device_ids)
        src_dem, dst_dem = _matching(demand_ids, self.index.demand_device_ids)
        lanes = np.arange(N_COUNTERS)
        src_ser = (src_dev[:, None] * N_COUNTERS + lanes).ravel()
        dst_ser = (dst_dev[:, None] * N_COUNTERS + lanes).ravel()
        for name in self._ARRAYS:
            if name in self._PER_DEVICE:
                src, dst = src_dev, dst_dev
            elif name in self._PER_DEMAND:
                src, dst = src_dem, dst_dem
            else:
                src, dst = src_ser, dst_ser
            getattr(self, name)[dst] = arrays[name][src]

    def migrated(self, index: DeviceIndex) -> StreamState:
        """This state carried over to a new registry's index, matched by device id.

        Devices in both keep today's and the month's energy, anchors and windows; new devices start empty;
        devices no longer in `index` drop out.

        Args:
            index: the new registry's device index.
        """
        new = StreamState(index, self.day_start_ms, self.limits, self.on_day_closed)
        new.import_arrays(self.export_arrays())
        new.gaps_left_out, new.dropped_late = self.gaps_left_out, self.dropped_late
        return new


def _matching(old: tuple[str, ...], new: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Positions in `old` and in `new` of the ids both hold."""
    where = {d: i for i, d in enumerate(old)}
    pairs = [(where[d], j) for j, d in enumerate(new) if d in where]
    src = np.fromiter((p[0] for p in pairs), dtype=np.int64, count=len(pairs))
    dst = np.fromiter((p[1] for p in pairs), dtype=np.int64, count=len(pairs))
    return src, dst
