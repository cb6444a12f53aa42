"""Per-device streaming state in arrays, advanced by micro-batches of decoded telemetry.

Holds, per device: latest active power and when it was read, when the device was last heard; per
counter series (device × counter field): the anchor reading the next one is compared with, and the
energy accumulated since 00:00 Beijing time. A new day (00:00 UTC+8) zeroes the day's energy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics import kernels
from analytics.devices import F_EXPORT, F_IMPORT, F_POWER, N_COUNTERS, DeviceIndex

NO_TS = np.iinfo(np.int64).min


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

    def __init__(self, index: DeviceIndex, now_ms: int, limits: StateLimits | None = None) -> None:
        self.index = index
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

    def roll_day(self, now_ms: int) -> bool:
        """Start a new day if `now_ms` is past 00:00 UTC+8 of the next one; True if it did."""
        start = day_start_ms(now_ms)
        if start <= self.day_start_ms:
            return False
        self.day_start_ms = start
        self.today[:] = 0.0
        return True

    def update(self, device: np.ndarray, ts: np.ndarray, field: np.ndarray, value: np.ndarray, now_ms: int) -> None:
        """Advance the state by one micro-batch of points (any order, duplicates allowed).

        Args:
            device: device index per value (int64).
            ts: timestamp per value (int64 ms).
            field: field code per value (`analytics.devices.FIELD_CODES`, or `F_OTHER`).
            value: the value.
            now_ms: current time (rolls the day before the batch is counted).
        """
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
        order = kernels.sort_dedupe(sid, ts)
        sid, ts = sid[order], ts[order]
        t0, delta, quality = kernels.counter_steps(
            sid, ts, value[order], self.index.modulus, self.limits.counter_max_gap_ms, self.anchor_value,
            self.anchor_ts,
        )
        self._book(sid, t0, ts, delta, quality)

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
        order = kernels.sort_dedupe(sid, ts)
        sid, ts = sid[order], ts[order]
        t0, delta, quality = kernels.power_steps(
            sid, ts, p[order], self.limits.integrate_max_gap_ms, self.power_anchor, self.power_anchor_ts
        )
        self._book(sid, t0, ts, delta, quality)

    def _book(self, sid: np.ndarray, t0: np.ndarray, t1: np.ndarray, delta: np.ndarray, quality: np.ndarray) -> None:
        self.gaps_left_out += kernels.window_total(
            sid, t0, t1, delta, quality, self.day_start_ms, self.day_start_ms + kernels.DAY_MS, self.today
        )

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
        self.anchor_value[sid] = last
        self.anchor_ts[sid] = at_ms
        self.counter_seen[sid] = True

    def fresh(self, now_ms: int) -> np.ndarray:
        """Mask of devices heard within `stale_after_ms` of `now_ms`."""
        return self.seen_ts >= now_ms - self.limits.stale_after_ms

    def today_by_field(self) -> np.ndarray:
        """Today's energy as `(n_devices, N_COUNTERS)`."""
        return self.today.reshape(self.index.n_devices, N_COUNTERS)
