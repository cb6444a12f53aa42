"""Streaming and backfill give the same hourly windows for the same data (property), and the backfill
against the real influxd over a generated history balances."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import kernels as k
from analytics.backfill import replay_columns
from analytics.devices import FIELD_CODES, build_index
from analytics.state import ClosedDay, StreamState
from tests.conftest import make_registry

DAY0 = int(datetime(2025, 3, 30, 16, tzinfo=UTC).timestamp() * 1000)  # 2025-03-31 00:00 Beijing: month edge too
MIN = 60_000
INDEX = build_index(make_registry("prop", [
    {"id": "gridprop", "role": "grid_meter", "template": "acrel_dtsd1352"},
    {"id": "pvprop", "role": "pv", "template": "huawei_sun2000"},
    {"id": "gasprop", "role": "gas_meter", "template": "gas_flowmeter_f64"},
]))
WRAP = 2**32 * 0.01


@st.composite
def telemetry(draw: st.DrawFn) -> pd.DataFrame:
    """Up to 2.5 days of counters and power with gaps, resets, rollovers around midnight and the month's end
    (hypothesis draws the shape, a seeded generator the values, so examples stay fast)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    p_gap, p_reset = draw(st.floats(0, 0.1)), draw(st.floats(0, 0.02))
    rows = []
    series = [("gridprop", "energy_import_kwh", WRAP - 500.0), ("gridprop", "energy_export_kwh", 10.0),
              ("pvprop", "energy_export_kwh", 5000.0), ("pvprop", "active_power_kw", 0.0),
              ("gasprop", "gas_volume_m3", 100.0)]
    for device, field, v0 in series:
        start = DAY0 - draw(st.integers(0, 90)) * MIN
        n = draw(st.integers(1, 700))
        steps = np.where(rng.random(n) < p_gap, rng.choice([40, 300], n) * MIN, rng.choice([1, 1, 5, 14], n) * MIN)
        ts = start + np.cumsum(steps + rng.integers(0, 1000, n))
        if field == "active_power_kw":
            values = rng.uniform(-5, 300, n)
        else:
            values = np.empty(n)
            v = v0
            for i in range(n):
                v = rng.uniform(0, 3) if rng.random() < p_reset and v > 100 else (v + rng.uniform(0, 80)) % WRAP
                values[i] = v
        rows.append(pd.DataFrame({"device": device, "ts": ts, "field": field, "value": values}))
    return pd.concat(rows, ignore_index=True)


def cols_of(df: pd.DataFrame) -> tuple[np.ndarray, ...]:
    return (df["device"].map(INDEX.position).to_numpy(np.int64), df["ts"].to_numpy(np.int64),
            df["field"].map(FIELD_CODES).to_numpy(np.int64), df["value"].to_numpy(np.float64))


@settings(max_examples=40, deadline=None)
@given(telemetry(), st.lists(st.integers(0, 60 * 60), max_size=30), st.randoms(use_true_random=False))
def test_streaming_micro_batches_equal_the_backfill(df: pd.DataFrame, cut_minutes: list[int], rnd) -> None:  # type: ignore[no-untyped-def]
    start, end = DAY0, DAY0 + 3 * k.DAY_MS
    backfilled = replay_columns(INDEX, cols_of(df), start, end)
    # Live: batches cut at random times (and at every midnight), each shuffled with redeliveries,
    # folded at the newest reading's time as the service does with the wall clock.
    cuts = sorted({DAY0 + m * MIN for m in cut_minutes} | {DAY0 + d * k.DAY_MS for d in range(4)})
    streamed: list[ClosedDay] = []
    state = StreamState(INDEX, int(df["ts"].min()), on_day_closed=streamed.append)
    edges = [int(df["ts"].min()), *cuts, int(df["ts"].max()) + 1]
    for a, z in itertools.pairwise(edges):
        part = df[(df["ts"] >= a) & (df["ts"] < z)]
        if part.empty:
            continue
        idx = list(part.index) + rnd.sample(list(part.index), min(3, len(part)))
        rnd.shuffle(idx)
        state.update(*cols_of(df.loc[idx]), now_ms=int(part["ts"].max()))
    state.flush_days()
    live = {d.start_ms: d for d in streamed if start <= d.start_ms < end and d.quality.any()}
    assert set(live) == {d.start_ms for d in backfilled if d.quality.any()}
    for day in backfilled:
        if not day.quality.any():
            continue
        np.testing.assert_allclose(live[day.start_ms].energy, day.energy, rtol=1e-9, atol=1e-6)
        np.testing.assert_array_equal(live[day.start_ms].quality, day.quality)
        np.testing.assert_allclose(live[day.start_ms].covered_ms, day.covered_ms)
