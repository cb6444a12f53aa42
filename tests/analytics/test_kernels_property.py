"""Kernels against a plain pandas reference on random data (gaps, duplicates, resets, rollovers, shuffles)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import kernels as k

MIN = 60_000
MAX_GAP = 5 * MIN
MODULUS = 1000.0  # a small wrap so random data reaches it
T_BASE = 1_750_000_000_000


@st.composite
def counter_table(draw: st.DrawFn) -> pd.DataFrame:
    """Rows (sid, ts, value) of up to 3 counters, with gaps, resets, rollovers, redeliveries, shuffled."""
    rows = []
    for s in range(draw(st.integers(1, 3))):
        t = T_BASE + draw(st.integers(0, 30 * MIN))
        v = draw(st.floats(0, 900))
        for _ in range(draw(st.integers(1, 25))):
            rows.append((s, t, v))
            if draw(st.booleans()) and draw(st.booleans()):
                rows.append((s, t, v))  # redelivery of the same reading
            t += draw(st.sampled_from([MIN, MIN, 2 * MIN, 7 * MIN, 40 * MIN])) + draw(st.integers(0, 999))
            event = draw(st.sampled_from(["rise"] * 6 + ["reset", "rollover"]))
            if event == "reset" and v > 10:
                v = draw(st.floats(0, 0.4)) * v
            elif event == "rollover":
                v = (v + draw(st.floats(50, 99))) % MODULUS if v > 901 else v + draw(st.floats(0, 20))
            else:
                v = v + draw(st.floats(0, 20))
            if v >= MODULUS:
                v -= MODULUS
    df = pd.DataFrame(rows, columns=["sid", "ts", "value"])
    perm = draw(st.permutations(range(len(df))))
    return df.iloc[list(perm)].reset_index(drop=True)


def reference_steps(df: pd.DataFrame) -> pd.DataFrame:
    """The plain pandas version: sort, dedupe (last arrival wins), diff, reset/rollover rules, gap flag."""
    d = df.reset_index().sort_values(["sid", "ts", "index"]).drop_duplicates(["sid", "ts"], keep="last")
    prev = d.groupby("sid")["value"].shift()
    prev_ts = d.groupby("sid")["ts"].shift()
    delta = d["value"] - prev
    rollover = (delta < 0) & (-delta > 0.5 * MODULUS)
    reset = (delta < 0) & ~rollover & (d["value"] <= k.RESET_FRACTION * prev)
    delta = delta.where(~rollover, delta + MODULUS).where(~reset, d["value"])
    out = pd.DataFrame({"sid": d["sid"], "t0": prev_ts, "t1": d["ts"], "delta": delta}).dropna()
    out["gap"] = (out["t1"] - out["t0"]) > MAX_GAP
    return out.astype({"t0": "int64"})


def kernel_steps(df: pd.DataFrame) -> tuple[np.ndarray, ...]:
    sid, ts, value = (df[c].to_numpy() for c in ("sid", "ts", "value"))
    sid, ts = sid.astype(np.int64), ts.astype(np.int64)
    order = k.sort_dedupe(sid, ts)
    t0, delta, q = k.counter_steps(sid[order], ts[order], value[order].astype(np.float64), np.full(3, MODULUS),
                                   MAX_GAP, np.full(3, np.nan), np.zeros(3, dtype=np.int64))
    return sid[order], t0, ts[order], delta, q


@settings(max_examples=150, deadline=None)
@given(counter_table())
def test_counter_energy_matches_pandas(df: pd.DataFrame) -> None:
    ref = reference_steps(df)
    sid, _, _, delta, q = kernel_steps(df)
    got = pd.Series(delta).groupby(sid).sum()
    want = ref.groupby("sid")["delta"].sum().reindex(got.index, fill_value=0.0)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-9, atol=1e-6)
    assert int((q == k.GAP).sum()) == int(ref["gap"].sum())
    assert int((q != k.MISSING).sum()) == len(ref)


def reference_hourly(ref: pd.DataFrame, first: int, n: int) -> np.ndarray:
    """Hourly Beijing windows: continuous steps shared by time, gaps whole where they end (pandas)."""
    ref = ref.copy()
    ref["b0"] = (ref["t0"] + k.BEIJING_OFFSET_MS) // k.HOUR_MS - first
    ref["b1"] = (ref["t1"] - 1 + k.BEIJING_OFFSET_MS) // k.HOUR_MS - first
    spanning_gap = ref["gap"] & (ref["b0"] != ref["b1"])
    booked = ref[spanning_gap].assign(b=lambda x: x["b1"], part=lambda x: x["delta"])
    spread = ref[~spanning_gap].copy()
    spread["b"] = [list(range(a, z + 1)) for a, z in zip(spread["b0"], spread["b1"], strict=True)]
    spread = spread.explode("b").astype({"b": "int64"})
    start = (spread["b"] + first) * k.HOUR_MS - k.BEIJING_OFFSET_MS
    overlap = np.minimum(spread["t1"], start + k.HOUR_MS) - np.maximum(spread["t0"], start)
    spread["part"] = spread["delta"] * overlap / (spread["t1"] - spread["t0"])
    both = pd.concat([booked[["sid", "b", "part"]], spread[["sid", "b", "part"]]])
    table = both.groupby(["sid", "b"])["part"].sum().unstack(fill_value=0.0)
    out = np.zeros((3, n))
    for s in table.index:
        for b in table.columns:
            out[s, b] = table.loc[s, b]
    return out


@settings(max_examples=100, deadline=None)
@given(counter_table())
def test_hourly_buckets_match_pandas(df: pd.DataFrame) -> None:
    ref = reference_steps(df)
    sid, t0, t1, delta, q = kernel_steps(df)
    first = int(k.bucket_of(np.array([df["ts"].min()], dtype=np.int64), k.HOUR_MS)[0])
    n = int(k.bucket_of(np.array([df["ts"].max()], dtype=np.int64), k.HOUR_MS)[0]) - first + 1
    energy, _, _, _ = k.bucket_steps(sid, t0, t1, delta, q, 3, first, n, k.HOUR_MS)
    np.testing.assert_allclose(energy, reference_hourly(ref, first, n), rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(energy.sum(), delta.sum(), rtol=1e-9, atol=1e-6)  # nothing lost, nothing invented


@settings(max_examples=100, deadline=None)
@given(counter_table(), st.data())
def test_micro_batches_give_the_same_total_as_one_batch_for_rising_counters(df: pd.DataFrame,
                                                                           data: st.DataObject) -> None:
    # Without resets or rollovers a late point adds nothing: the total is last - first whatever the batching.
    df = df.assign(value=df.groupby("sid")["ts"].rank(method="dense") * 1.5)
    cut = data.draw(st.integers(0, len(df)))
    anchors, anchor_ts = np.full(3, np.nan), np.zeros(3, dtype=np.int64)
    total = np.zeros(3)
    for part in (df.iloc[:cut], df.iloc[cut:]):
        sid, ts = part["sid"].to_numpy(np.int64), part["ts"].to_numpy(np.int64)
        order = k.sort_dedupe(sid, ts)
        _, delta, _ = k.counter_steps(sid[order], ts[order], part["value"].to_numpy(np.float64)[order],
                                      np.zeros(3), MAX_GAP, anchors, anchor_ts)
        np.add.at(total, sid[order], delta)
    # A late point adds nothing: everything after a series' first anchor (its earliest reading in the first
    # batch that holds it) is counted exactly once, whatever the batching.
    first_part = df.iloc[:cut] if cut else df
    base = first_part.groupby("sid")["value"].min().combine_first(df.groupby("sid")["value"].min())
    want = (df.groupby("sid")["value"].max() - base).reindex(range(3), fill_value=0.0)
    np.testing.assert_allclose(total, want.to_numpy(), atol=1e-9)


@st.composite
def power_table(draw: st.DrawFn) -> pd.DataFrame:
    rows = []
    for s in range(draw(st.integers(1, 3))):
        t = T_BASE
        for _ in range(draw(st.integers(1, 30))):
            rows.append((s, t, draw(st.floats(0, 500))))
            t += draw(st.sampled_from([2_000, 10_000, MIN, 6 * MIN]))
    df = pd.DataFrame(rows, columns=["sid", "ts", "p"])
    return df.iloc[list(draw(st.permutations(range(len(df)))))]


@settings(max_examples=100, deadline=None)
@given(power_table())
def test_power_integration_matches_pandas_trapezoid(df: pd.DataFrame) -> None:
    d = df.sort_values(["sid", "ts"])
    g = d.groupby("sid")
    dt = d["ts"] - g["ts"].shift()
    part = (d["p"] + g["p"].shift()) / 2 * dt / k.HOUR_MS
    want = part.where(dt <= MAX_GAP, 0.0).fillna(0.0).groupby(d["sid"]).sum()
    sid, ts, p = df["sid"].to_numpy(np.int64), df["ts"].to_numpy(np.int64), df["p"].to_numpy(np.float64)
    order = k.sort_dedupe(sid, ts)
    _, delta, _ = k.power_steps(sid[order], ts[order], p[order], MAX_GAP, np.full(3, np.nan),
                                np.zeros(3, dtype=np.int64))
    got = pd.Series(delta).groupby(sid[order]).sum()
    np.testing.assert_allclose(got.to_numpy(), want.reindex(got.index).to_numpy(), rtol=1e-9, atol=1e-9)
