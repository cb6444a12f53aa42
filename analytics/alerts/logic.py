"""Pure evaluation logic of alert conditions: hysteresis with on-delay, rolling mean, rate of change,
off-hours and robust baselines. No I/O and no clock: every step is given its timestamp, so tests freeze time.
"""

from __future__ import annotations

import warnings
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from analytics.alerts.rules import Level

BEIJING_OFFSET_MS = 8 * 3600 * 1000
HOUR_MS = 3600 * 1000
WEEK_MS = 7 * 24 * HOUR_MS
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution × 1.4826 = its standard deviation


class Change(StrEnum):
    RAISE = "raise"  # first raise, or a higher level reached
    REPEAT = "repeat"  # still active, same level
    CLEAR = "clear"


@dataclass(frozen=True, slots=True)
class Transition:
    change: Change
    value: float
    level: int  # 1-based level reached (0 on clear)


@dataclass(slots=True)
class LevelState:
    """Where one rule stands for one source."""

    level: int = 0  # 0 = inactive, n = highest level reached while active
    pending_since: int | None = None  # when the condition was first seen (on-delay running)
    window: deque[tuple[int, float]] = field(default_factory=deque)
    window_sum: float = 0.0


def level_reached(levels: list[Level], value: float, direction: str) -> int:
    """The highest 1-based level whose raise value `value` reaches (0 for none)."""
    reached = 0
    for i, lv in enumerate(levels, 1):
        if (value >= lv.raise_at) if direction == "high" else (value <= lv.raise_at):
            reached = i
    return reached


def is_clear(value: float, clear: float, direction: str) -> bool:
    return value <= clear if direction == "high" else value >= clear


def rolling_mean(state: LevelState, ts_ms: int, value: float, window_s: float) -> float:
    """Add a sample and return the mean over the last `window_s` (by sample timestamps)."""
    state.window.append((ts_ms, value))
    state.window_sum += value
    horizon = ts_ms - window_s * 1000
    while state.window and state.window[0][0] < horizon:
        state.window_sum -= state.window.popleft()[1]
    return state.window_sum / len(state.window)


def step_levels(state: LevelState, ts_ms: int, value: float, *, levels: list[Level], clear: float,
                direction: str = "high", on_delay_s: float = 0.0) -> Transition | None:
    """Advance a hysteresis state with one value.

    Raises after the condition has held for `on_delay_s` (a higher level while active raises at once:
    a safety second level must not wait), repeats while active, clears only at or beyond `clear`.

    Args:
        state: the state of this rule and source (updated in place).
        ts_ms: time of the value.
        value: the value (already averaged or made absolute where the rule says so).
        levels: the rule's levels, in the order they are reached.
        clear: the value at which an active condition clears.
        direction: "high" (alarm above) or "low" (alarm below).
        on_delay_s: how long the condition must hold before the first raise.
    """
    reached = level_reached(levels, value, direction)
    if state.level:
        if is_clear(value, clear, direction):
            state.level, state.pending_since = 0, None
            return Transition(Change.CLEAR, value, 0)
        if reached > state.level:
            state.level = reached
            return Transition(Change.RAISE, value, reached)
        return Transition(Change.REPEAT, value, state.level)
    if not reached:
        state.pending_since = None
        return None
    if on_delay_s > 0:
        if state.pending_since is None:
            state.pending_since = ts_ms
        if ts_ms - state.pending_since < on_delay_s * 1000:
            return None
    state.level, state.pending_since = reached, None
    return Transition(Change.RAISE, value, reached)


@dataclass(slots=True)
class RateState:
    samples: deque[tuple[int, float]] = field(default_factory=deque)
    active: bool = False


def rate_per_min(state: RateState, ts_ms: int, value: float, window_s: float) -> float | None:
    """Add a sample; the change per minute between the oldest sample in the window and this one."""
    state.samples.append((ts_ms, value))
    horizon = ts_ms - window_s * 1000
    while len(state.samples) > 2 and state.samples[1][0] <= horizon:
        state.samples.popleft()
    t0, v0 = state.samples[0]
    if ts_ms <= t0:
        return None
    return (value - v0) / ((ts_ms - t0) / 60_000)


def step_rate(state: RateState, ts_ms: int, value: float, *, window_s: float, raise_per_min: float,
              clear_per_min: float, direction: str = "both") -> Transition | None:
    """Advance a rate-of-change state; the transition's value is the rate per minute.

    Args:
        state: the state of this rule and source (updated in place).
        ts_ms: time of the value.
        value: the value.
        window_s: span over which the rate is measured.
        raise_per_min: rate (absolute, in the chosen direction) that raises.
        clear_per_min: rate below which an active alert clears.
        direction: "rise", "fall" or "both".
    """
    rate = rate_per_min(state, ts_ms, value, window_s)
    if rate is None:
        return None
    signed = rate if direction == "rise" else -rate if direction == "fall" else abs(rate)
    if state.active:
        if signed < clear_per_min:
            state.active = False
            return Transition(Change.CLEAR, rate, 0)
        return Transition(Change.REPEAT, rate, 1)
    if signed >= raise_per_min:
        state.active = True
        return Transition(Change.RAISE, rate, 1)
    return None


def beijing_hour_start(ts_ms: int) -> int:
    """Start (epoch ms) of the Beijing-time hour containing `ts_ms`."""
    return ts_ms - (ts_ms + BEIJING_OFFSET_MS) % HOUR_MS


def is_off_hours(ts_ms: int, night_hours: tuple[int, int], weekend: bool) -> bool:
    """Night (Beijing time, [start, end) wrapping midnight) or, if `weekend`, Saturday and Sunday."""
    local_s = (ts_ms + BEIJING_OFFSET_MS) // 1000
    hour = (local_s // 3600) % 24
    weekday = (local_s // 86400 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    start, end = night_hours
    night = (start <= hour < end) if start < end else (hour >= start or hour < end)
    return bool(night or (weekend and weekday >= 5))


def robust_baseline(history: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, robust sigma (1.4826 × MAD) and count of each row of `history` (NaN = missing).

    Vectorised over rows (one row per enterprise, one column per past week).
    """
    count = np.sum(~np.isnan(history), axis=1)
    with warnings.catch_warnings():  # rows without history are NaN, by design
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(history, axis=1)
        mad = np.nanmedian(np.abs(history - median[:, None]), axis=1)
    return median, MAD_TO_SIGMA * mad, count


def anomalous(value: np.ndarray, history: np.ndarray, *, k: float, min_abs: float,
              min_history: int) -> tuple[np.ndarray, np.ndarray]:
    """Which values deviate from their row's history by more than k robust sigmas and `min_abs`.

    A flat history (MAD 0) falls back to 10 % of its median as sigma, so constant loads still judge.

    Returns:
        (flags, medians), one per row.
    """
    median, sigma, count = robust_baseline(history)
    sigma = np.where(sigma > 0, sigma, 0.1 * np.abs(median))
    deviation = np.abs(value - median)
    flags = (count >= min_history) & (deviation > np.maximum(k * sigma, min_abs))
    return flags, median
