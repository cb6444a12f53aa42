"""Pure alert logic with frozen time: hysteresis, on-delay, rolling means, rate of change, baselines."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np

from analytics.alerts.logic import (
    Change,
    LevelState,
    RateState,
    anomalous,
    beijing_hour_start,
    is_off_hours,
    robust_baseline,
    rolling_mean,
    step_levels,
    step_rate,
)
from analytics.alerts.rules import Level

GAS = [Level(raise_at=25, severity="warning"), Level(raise_at=50, severity="critical")]
BJ = timezone(timedelta(hours=8))


def run(values: list[float], *, clear: float = 20, on_delay_s: float = 0, direction: str = "high",
        levels: list[Level] = GAS, step_ms: int = 1000) -> list[tuple[str, int] | None]:
    st = LevelState()
    out: list[tuple[str, int] | None] = []
    for i, v in enumerate(values):
        tr = step_levels(st, i * step_ms, v, levels=levels, clear=clear, direction=direction, on_delay_s=on_delay_s)
        out.append(None if tr is None else (tr.change.value, tr.level))
    return out


def test_two_levels_raise_in_order_and_clear_only_below_the_clear_level() -> None:
    assert run([10, 26, 30, 55, 40, 22, 19]) == [
        None, ("raise", 1), ("repeat", 1), ("raise", 2), ("repeat", 2), ("repeat", 2), ("clear", 0)]


def test_hysteresis_band_neither_raises_nor_clears() -> None:
    assert run([22, 24, 26, 21, 24, 26]) == [None, None, ("raise", 1), ("repeat", 1), ("repeat", 1), ("repeat", 1)]


def test_jump_straight_to_second_level() -> None:
    assert run([0, 60])[1] == ("raise", 2)


def test_on_delay_needs_the_condition_to_hold() -> None:
    # 1 s steps, 3 s on-delay: a 2 s blip never raises; a sustained excursion raises 3 s after it began.
    assert run([30, 30, 10, 30, 30, 30, 30], on_delay_s=3) == [None, None, None, None, None, None, ("raise", 1)]


def test_low_direction_power_factor() -> None:
    levels = [Level(raise_at=0.90, severity="warning")]
    assert run([0.95, 0.89, 0.91, 0.93], clear=0.92, direction="low", levels=levels) == [
        None, ("raise", 1), ("repeat", 1), ("clear", 0)]


def test_rolling_mean_drops_old_samples() -> None:
    st = LevelState()
    assert rolling_mean(st, 0, 100, 10) == 100
    assert rolling_mean(st, 5_000, 200, 10) == 150
    assert rolling_mean(st, 12_000, 300, 10) == 250  # the t=0 sample left the 10 s window


def test_rate_of_change_with_hysteresis() -> None:
    st = RateState()
    kw = dict(window_s=60, raise_per_min=100, clear_per_min=20)
    assert step_rate(st, 0, 1000, **kw) is None
    tr = step_rate(st, 30_000, 1100, **kw)  # +100 kW in 30 s = 200 kW/min
    assert tr is not None and tr.change is Change.RAISE and tr.value == 200
    tr = step_rate(st, 60_000, 1150, **kw)  # 150 kW over 60 s: still above clear
    assert tr is not None and tr.change is Change.REPEAT
    changes = [step_rate(st, t, 1150, **kw) for t in range(90_000, 300_000, 30_000)]
    assert [c.change for c in changes if c is not None][-1] is Change.CLEAR
    assert not st.active


def test_rate_direction_fall_ignores_rises() -> None:
    st = RateState()
    kw = dict(window_s=60, raise_per_min=100, clear_per_min=20, direction="fall")
    step_rate(st, 0, 1000, **kw)
    assert step_rate(st, 30_000, 2000, **kw) is None
    tr = step_rate(st, 60_000, 100, **kw)
    assert tr is not None and tr.change is Change.RAISE


def test_off_hours_in_beijing_time() -> None:
    def ms(*args: int) -> int:
        return int(datetime(*args, tzinfo=BJ).timestamp() * 1000)

    assert is_off_hours(ms(2024, 6, 19, 23, 30), (22, 6), weekend=True)  # Wednesday night
    assert is_off_hours(ms(2024, 6, 19, 5, 59), (22, 6), weekend=True)
    assert not is_off_hours(ms(2024, 6, 19, 6, 0), (22, 6), weekend=True)
    assert is_off_hours(ms(2024, 6, 22, 12, 0), (22, 6), weekend=True)  # Saturday noon
    assert not is_off_hours(ms(2024, 6, 22, 12, 0), (22, 6), weekend=False)
    assert beijing_hour_start(ms(2024, 6, 19, 23, 30)) == ms(2024, 6, 19, 23, 0)


def test_robust_baseline_ignores_one_outlier_week() -> None:
    history = np.array([[100.0, 102.0, 98.0, 400.0], [np.nan, np.nan, np.nan, np.nan]])
    median, sigma, count = robust_baseline(history)
    assert median[0] == 101.0 and count.tolist() == [4, 0]
    assert sigma[0] < 10  # the 400 kW week does not inflate the spread
    assert np.isnan(median[1])


def test_anomaly_flags_only_large_robust_deviations_with_enough_history() -> None:
    history = np.array([[100.0, 102.0, 98.0, 101.0], [100.0, 102.0, 98.0, 101.0], [100.0, np.nan, np.nan, np.nan]])
    flags, _ = anomalous(np.array([160.0, 104.0, 500.0]), history, k=3.5, min_abs=10, min_history=3)
    assert flags.tolist() == [True, False, False]  # row 3 has one week of history only


def test_anomaly_on_a_flat_history_uses_a_fraction_of_the_median() -> None:
    history = np.array([[50.0, 50.0, 50.0]])
    assert not anomalous(np.array([54.0]), history, k=3.5, min_abs=1, min_history=3)[0][0]
    assert anomalous(np.array([80.0]), history, k=3.5, min_abs=1, min_history=3)[0][0]
