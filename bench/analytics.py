"""Analytics throughput: numba kernels vs a plain pandas reference, vs the memory bandwidth, and the whole
service path (MQTT payload bytes → decode → state update → KPIs), all measured in this one run.

    .venv/bin/python bench/analytics.py            # 10 million readings over 10,000 devices
    .venv/bin/python bench/analytics.py --quick    # 1 million over 1,000

A reading is one counter value of one device (kernels) or one field value of a telemetry point (service).
The kernels' input is what a stream of 10,000 devices polled every `--interval-s` (default 5 s, the slowest
poll of the registry, so the most window crossings per reading) looks like: time-major, 1 % redelivered at
the end (copies of readings anywhere in the batch), rollovers. Every figure is the median of `--repeats` (≥ 3)
runs, or of at least 11 for the fused kernel's stages and the bandwidth bound (tens of ms each: on this noisy
VM one burst on the other vCPU moved a median of 3 by a third), each from scratch on the same unsorted input
(no result or sort kept across repeats); beside the wall-clock rate, the rate per second of the thread's CPU
time (one-thread stages only; with other jobs on the cores it leaves out the waits for a core). The kernels fold
into a fresh, zeroed state whose pages are resident, as the service's state is (made untimed before each run);
the row `fold_batch + allocating its state` times the fold with a new np.zeros state instead (page faults). The last three lines are the summary
(wall clock): `kernel_vs_pandas` (analytics.fold.fold_batch — dedupe, counter steps, today, month, hourly and
15-minute windows with energy, covered time and quality — against pandas computing the same outputs from the
same input; the outputs are compared first), `kernel_bandwidth_fraction` (bytes the fold must touch per
reading, formula printed, × readings/s ÷ the memory bandwidth bound), `service_readings_per_s_per_core`.

fold_batch folds a batch this large on two threads (analytics.fold.PARALLEL_MIN_READINGS; the service's
micro-batches stay on one), so the bound is the larger of a one-thread and a two-thread numpy sum over 400 MB
(on this 2-vCPU VM they are about equal, 22-31 GB/s: the memory, not the core, is the limit). The one-thread
form is printed too, with its fraction of the one-thread bound. The service path runs on one core.

Where the time goes (py-spy 0.4 record -r 200 --format raw -- python bench/analytics.py --quick; paired runs
of kernel variants in one process, thread CPU time or wall, medians of 7-9):
- service path: 78 % in analytics.decode.decode_batch (msgspec decode 26 %, mapping field names to
  codes 21 %, extending the ts list 13 %, list → array conversions ~24 %), ~11 % the state update.
- kernels, first: sort_dedupe (counting sort by series: scattered writes) 15-20 M readings/s, then
  counter_steps, window_total ×2, add_to_buckets ×2 each a pass over per-step temporaries.
- kernels, then (analytics.fold, previous version; 5 s interval, one thread): 52-66 ms for 10.1 M readings.
  Without the 1 % redeliveries 39 ms: the 100 k redeliveries cost ~180 ns each. Each one stopped its series
  on the rare path, whose per-series bookkeeping (next late reading, held cells) and the late records were out
  of cache by then (the batch streams 240 MB through the caches; only rows touched every round stay).
- kernels, now (one thread 47-55 ms, two threads 33-42 ms on a quiet machine):
  - late pass ~9-11 ms (a gather-compare-scatter over sid and ts, 16 B per reading), then sorting the ~1 %
    late readings 2.5 ms (they arrive in no order; short runs per series now insertion-sorted, where an
    argsort per series allocated). On two threads the halves are scanned at once: 7 ms.
  - the common path is a tight loop over 4,096-reading chunks: a continuous step inside the held cells only
    moves the anchor in the series' 64-byte hot row (a counter's run is booked as the difference of its ends
    when it ends; `_flush`); whatever it cannot take is set aside with the rest of its series' readings in
    the chunk. Floor of such a loop here: 18 ms with a 32-byte row, 21 ms with 64 bytes, +3 ms for the
    series-range test of the two-thread form (compiled away on one thread), +2-3 ms for chunking.
  - a redelivery of the very reading (same time, same value) is passed by from the hot row (next late time
    and value live there), and the series' next late record is read after the chunk for all such series at
    once, so those misses overlap: the redeliveries now cost ~8 ms in all.
- two threads, then (paired runs of the two-thread fold, old and new in one process, medians of 14:
  34.5 -> 31.7 -> 30.9 ms): each thread read the whole batch and passed over the other half's series. Now the
  late scan also notes, per block of 512 readings, which half of the series it holds (a register OR per
  reading, +2 ms to the scan); a thread reads only the blocks of its own half and both read the mixed blocks
  (the redeliveries at the end, the block where a time step passes from one half to the other). Each thread
  sorts its own late readings (the sort was serial).
- tried and dropped: the hot row split into a 32-byte row for the tight loop and a second row for the rest
  (two threads 30.8 vs 29.9 ms, one 47.4 vs 46.6: no gain, though a stripped loop had shown one); exact run
  edges noted by the late scan (a store per reading: +4 ms to the scan, which
  ate the gain); booking only the anchor (the run at its end) with everything else unchanged: no gain
  alone (56.4 vs 58.7 ms: the loop was not bound by its additions); the redelivery test inside the tight
  loop: the loop compiled 3.5× slower (121 vs 35 ms) though the branch was never taken; larger chunks
  (16 K: 62 ms, 64 K: 71 ms vs 4 K: 56 ms; 1 K: 61 ms); unsigned series indices (no change); software
  prefetch (earlier version: slower or no change); two threads each scanning the whole batch for the late
  readings (no faster than one: bandwidth; hence the halves).
- then (paired runs against the previous commit in one process, medians of 12-21, two threads:
  30.0 -> 22.2 ms, one thread 46 -> 37-40 ms; a scratch rdtsc breakdown per phase):
  - numba fixes up negative indices: every `a[i]` with a signed i became sar/and/lea before the load, a third
    of the late scan's instructions. Unsigned loop and series indices (uint64) leave it out: the two-thread late
    scan (`_late_two_threads`) went from 14.5 to 5.7 ms, the memory's pace (16 B a reading at ~28 GB/s), and
    the block notes (which half of the series a block holds) no longer cost anything; one thread's part of the
    fold, alone, from 19.2 to 17.4 ms. Paired two-thread fold: 30.0 -> 24.5 ms.
  - the common step's three tests (late or gap, limit, counter not falling) as one unsigned compare and a
    bitwise and: the stripped loop 15.6 -> 13.4 ms, the fold 24.5 -> 23.5 ms.
  - each thread's late readings were sorted by (series, time) and each record read at a redelivery was a cache
    miss; now one stable radix sort by time (fold._time_order, 0.3 ms for 50,000) lays the records out in the
    order the streams meet them, each linked to its series' next.
  - where the 22 ms go now: late scan 5.6 ms (two threads, at the memory's pace), then each thread: tight loop
    12.4 ms (5.5 M readings: its half and the mixed blocks), readings set aside 1.0 ms, redeliveries passed by
    0.5 ms, late records and state set-up 1.2 ms. The loop reads 24 B a reading at ~21 GB/s for the two.
  - page faults: the late readings' work arrays (~4.4 MB a thread here) came from the worker threads' malloc
    arenas, which gave them back after every other fold: 11 folds in a row alternated 199 and 1,671 minor
    faults, 23 and 25.5 ms, and the median fell on the slow side. They are now kept from fold to fold
    (analytics.fold.Workspace, one set a calling thread): 199 faults every time (the late scan's buffers).
    Passing the hot rows in too made the fold slower (26.4 vs 22.5 ms: LLVM no longer knew they alias
    nothing), so those are still allocated in the fold.
  - tried and dropped: 24- or 32-byte hot rows (the rest in a cold row): a stripped loop was 20 % faster, the
    fold was not (paired, medians of 20: 23.0 vs 22.2 ms; the readings set aside then miss the cold row);
    blocks of 128 or 256 readings instead of 512 (no change); touching the hot row 8-32 readings ahead (slower);
    the late check folded into the common step's compare (two threads no faster, one thread slower); passing a
    redelivery by inside the tight loop instead of setting it aside (its code got slower: paired, medians of
    20, 23.2 vs 21.4 ms, as it did before); the tight loop indexing flat views of the hot rows (a shift where
    2-D indexing multiplies: one thread 40.0 vs 39.6 ms, no gain).
- what bounds it: any reading may be redelivered late, so the late readings must be known before the first
  reading of their series is taken: the batch is read twice (16 + 24 B a reading), 13 ms at ~32 GB/s. Past
  the late scan the fold is bound by its instructions, not the memory (~7 cycles a reading in the tight loop).
  Two threads gain ~1.7× with the second core free; with the other core busy they are slower than one.
- the bound moves with the host: two threads' numpy sum measured 30-32 GB/s in most runs and 48 GB/s in some
  (one thread ~28-32 either way), while the fold ran at the same ~390-430 M readings/s; in such a run the
  fraction is ~0.20 where it is otherwise 0.29-0.34.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analytics import fold  # noqa: E402
from analytics import kernels as k  # noqa: E402
from analytics.fold import fold_batch  # noqa: E402
from analytics.service import AnalyticsService  # noqa: E402
from parkmodel.codec import telemetry_payload  # noqa: E402
from parkmodel.registry import parse_registry  # noqa: E402
from parkmodel.topics import telemetry_topic  # noqa: E402
from smartpark.config import Settings  # noqa: E402

MODULUS = 2**32 * 0.01
MAX_GAP = 15 * 60_000


#: Median CPU time of this thread per call of the last `timed` functions, by name (shown beside the wall
#: time: with other jobs on the cores, wall time counts the waits for a core too).
CPU_TIMES: dict[str, float] = {}


def timed(fn: Callable[..., Any], repeats: int, name: str = "", setup: Callable[[], Any] | None = None) -> float:
    """Median wall time of `fn` over `repeats` runs (and its median thread CPU time in `CPU_TIMES[name]`);
    with `setup`, each run is `fn(setup())`, setup untimed."""
    times, cpu = [], []
    for _ in range(repeats):
        arg = () if setup is None else (setup(),)
        t, c = time.perf_counter(), time.thread_time()
        fn(*arg)
        times.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
    if name:
        CPU_TIMES[name] = statistics.median(cpu)
    return statistics.median(times)


def readings(n: int, devices: int, interval_ms: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counter readings as they arrive: time-major over devices, one every `interval_ms` per device (jittered by
    up to half of it, at most 5 s), 1 % redelivered at the end (copies of readings anywhere in the batch),
    rollovers."""
    rng = np.random.default_rng(seed)
    per = n // devices
    sid = np.tile(np.arange(devices, dtype=np.int64), per)
    step = np.repeat(np.arange(per, dtype=np.int64), devices)
    ts = 1_750_000_000_000 + step * interval_ms + rng.integers(0, min(5_000, interval_ms // 2), sid.shape[0])
    rise = rng.uniform(0.0, 2.0, sid.shape[0]).reshape(per, devices).cumsum(axis=0).ravel()
    start = rng.uniform(0, MODULUS, devices)
    value = np.mod(start[sid] + rise, MODULUS)
    dup = rng.integers(0, sid.shape[0], sid.shape[0] // 100)
    return (np.concatenate([sid, sid[dup]]), np.concatenate([ts, ts[dup]]), np.concatenate([value, value[dup]]))


class Layout:
    """The windows the streaming state keeps (analytics.state), placed around the readings: today is the day of
    the newest reading, hourly columns yesterday..tomorrow, 15-minute columns of the month; every 10th series
    is a grid meter's import counter (a demand series)."""

    def __init__(self, ts: np.ndarray, n_series: int) -> None:
        newest = int(ts.max())
        self.day = (newest + k.BEIJING_OFFSET_MS) // k.DAY_MS * k.DAY_MS - k.BEIJING_OFFSET_MS
        self.month = (k.month_start_ms(newest), k.next_month_start_ms(newest))
        self.first_hour = (self.day - k.DAY_MS + k.BEIJING_OFFSET_MS) // k.HOUR_MS
        self.first_quarter = (self.month[0] + k.BEIJING_OFFSET_MS) // k.QUARTER_MS
        self.n_series = n_series
        self.demand_row = np.where(np.arange(n_series) % 10 == 0, np.arange(n_series) // 10, -1)
        self.n_demand = (n_series + 9) // 10


def new_state(lay: Layout, resident: bool) -> dict[str, np.ndarray]:
    """Empty streaming state (windows, anchors) for `lay`; `resident`: its pages touched, as the service's state
    (allocated once, folded into batch after batch) is. A fresh np.zeros is not: the first write to each page
    faults (and on this VM a freed page given back costs a host fault too)."""
    n = lay.n_series
    out = {"today": np.zeros(n), "month": np.zeros(n), "hour_e": np.zeros((n, 72)), "hour_c": np.zeros((n, 72)),
           "hour_q": np.zeros((n, 72), dtype=np.int8), "quarter_e": np.zeros((lay.n_demand, 2976)),
           "quarter_c": np.zeros((lay.n_demand, 2976)), "quarter_q": np.zeros((lay.n_demand, 2976), dtype=np.int8),
           "modulus": np.full(n, MODULUS), "anchor": np.full(n, np.nan), "anchor_ts": np.zeros(n, dtype=np.int64)}
    if resident:
        for a in out.values():
            a[...] = a.copy()
    return out


def kernel_pipeline(sid: np.ndarray, ts: np.ndarray, value: np.ndarray, lay: Layout,
                    out: dict[str, np.ndarray] | None = None, threads: int = 0) -> dict[str, np.ndarray]:
    """What the streaming state does with a batch of counter readings (analytics.fold.fold_batch: two threads
    for a batch this large), into `out` (empty state; new when None); `threads=1`: its one-thread form."""
    out = new_state(lay, resident=False) if out is None else out
    args = (sid, ts, value, False, out["modulus"], MAX_GAP, out["anchor"], out["anchor_ts"],
            lay.day, lay.day + k.DAY_MS, out["today"], *lay.month, out["month"], lay.first_hour, out["hour_e"],
            out["hour_c"], out["hour_q"], lay.demand_row, lay.first_quarter, out["quarter_e"], out["quarter_c"],
            out["quarter_q"])
    if threads == 1:
        fold._fold_one(*args)
    else:
        fold_batch(*args)
    return out


def separate_pipeline(sid: np.ndarray, ts: np.ndarray, value: np.ndarray, lay: Layout,
                      out: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The same with the separate kernels, as the streaming state did before fold_batch (the "before")."""
    n = lay.n_series
    out = new_state(lay, resident=False) if out is None else out
    order = k.sort_dedupe(sid, ts)
    s, t = sid[order], ts[order]
    t0, d, q = k.counter_steps(s, t, value[order], out["modulus"], MAX_GAP, out["anchor"], out["anchor_ts"])
    k.window_total(s, t0, t, d, q, lay.day, lay.day + k.DAY_MS, out["today"])
    k.window_total(s, t0, t, d, q, *lay.month, out["month"])
    k.add_to_buckets(s, t0, t, d, q, np.arange(n), lay.first_hour, k.HOUR_MS, out["hour_e"], out["hour_c"],
                     out["hour_q"])
    k.add_to_buckets(s, t0, t, d, q, lay.demand_row, lay.first_quarter, k.QUARTER_MS, out["quarter_e"],
                     out["quarter_c"], out["quarter_q"])
    return out


def pandas_pipeline(sid: np.ndarray, ts: np.ndarray, value: np.ndarray, lay: Layout) -> dict[str, np.ndarray]:
    """The same outputs from the same unsorted input, written plainly in pandas: sort, dedupe (last arrival
    wins), counter steps (rollover, reset), today's and the month's share of each step, hourly and 15-minute
    windows (energy shared by time, covered time, quality). Asserts the input has nothing it leaves out
    (noise drops, gaps, steps over more than two windows), which the kernel handles and the data lacks."""
    df = pd.DataFrame({"sid": sid, "ts": ts, "value": value})
    d = df.reset_index().sort_values(["sid", "ts", "index"]).drop_duplicates(["sid", "ts"], keep="last")
    g = d.groupby("sid")
    prev, prev_ts = g["value"].shift(), g["ts"].shift()
    delta = d["value"] - prev
    roll = (delta < 0) & (-delta > 0.5 * MODULUS)
    reset = (delta < 0) & ~roll & (d["value"] <= k.RESET_FRACTION * prev)
    assert not ((delta < 0) & ~roll & ~reset).any(), "noise drops: not in the pandas reference"
    delta = delta.where(~roll, delta + MODULUS).where(~reset, d["value"])
    steps = pd.DataFrame({"sid": d["sid"], "t0": prev_ts, "t1": d["ts"], "delta": delta}).dropna()
    t0, t1 = steps["t0"].astype(np.int64), steps["t1"]
    dt = t1 - t0
    assert (dt <= MAX_GAP).all(), "gaps: not in the pandas reference"
    n = lay.n_series
    out: dict[str, np.ndarray] = {}
    for name, (start, end) in {"today": (lay.day, lay.day + k.DAY_MS), "month": lay.month}.items():
        overlap = (np.minimum(t1, end) - np.maximum(t0, start)).clip(lower=0)
        out[name] = (steps["delta"] * overlap / dt).groupby(steps["sid"]).sum().reindex(range(n), fill_value=0.0) \
            .to_numpy()
    for name, width, first, rows, cols in (("hour", k.HOUR_MS, lay.first_hour, steps["sid"], 72),
                                           ("quarter", k.QUARTER_MS, lay.first_quarter,
                                            steps["sid"].map(pd.Series(lay.demand_row)), 2976)):
        b0 = (t0 + k.BEIJING_OFFSET_MS) // width
        b1 = (t1 - 1 + k.BEIJING_OFFSET_MS) // width
        assert ((b1 - b0) <= 1).all(), "steps over more than two windows: not in the pandas reference"
        edge = b1 * width - k.BEIJING_OFFSET_MS
        late_part = (t1 - np.maximum(edge, t0))  # the part in window b1 (all of it when b0 == b1)
        parts = pd.DataFrame({"row": pd.concat([rows, rows]), "b": pd.concat([b0, b1]) - first,
                              "covered": pd.concat([dt - late_part, late_part])})
        parts["e"] = pd.concat([steps["delta"], steps["delta"]]) * parts["covered"] / pd.concat([dt, dt])
        parts = parts[(parts["covered"] > 0) & (parts["row"] >= 0) & (parts["b"] >= 0) & (parts["b"] < cols)]
        table = parts.groupby(["row", "b"])[["e", "covered"]].sum()
        n_rows = n if name == "hour" else lay.n_demand
        r, b = table.index.get_level_values(0).to_numpy(), table.index.get_level_values(1).to_numpy()
        e, c = np.zeros((n_rows, cols)), np.zeros((n_rows, cols))
        q = np.zeros((n_rows, cols), dtype=np.int8)
        e[r, b], c[r, b], q[r, b] = table["e"].to_numpy(), table["covered"].to_numpy(), k.MEASURED
        out[f"{name}_e"], out[f"{name}_c"], out[f"{name}_q"] = e, c, q
    return out


def bandwidth_bytes_per_s(repeats: int, threads: int = 1) -> float:
    """Bytes/s a numpy sum of 400 MB reads, on `threads` threads (each summing its share at once)."""
    big = np.ones(400_000_000 // 8)
    big.sum()
    parts = np.array_split(big, threads)

    def run() -> None:
        if threads == 1:
            big.sum()
            return
        workers = [threading.Thread(target=part.sum) for part in parts]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    return big.nbytes / timed(run, repeats)


def bench_registry(devices: int) -> dict[str, Any]:
    """Parks of 10 enterprises; each enterprise a grid meter, a PV inverter and load meters (50 a gateway)."""
    per_ent = 100
    parks = []
    n = 0
    for p in range(max(1, devices // (per_ent * 10))):
        ents = []
        for e in range(10):
            devs = []
            for i in range(per_ent):
                role, template = ("grid_meter", "acrel_dtsd1352") if i == 0 else (
                    ("pv", "huawei_sun2000") if i == 1 else ("load_meter", "acrel_dtsd1352"))
                devs.append({"id": f"d{n}", "role": role, "template": template})
                n += 1
            gws = [{"id": f"g{p}-{e}-{j}", "devices": devs[j:j + 50]} for j in range(0, per_ent, 50)]
            ents.append({"id": f"e{p}-{e}", "name": "企业", "land_area_mu": 100, "contracted_capacity_kw": 5000,
                         "gateways": gws})
        parks.append({"id": f"p{p}", "name": "园区", "enterprises": ents})
    return {"version": 1, "parks": parks}


def service_messages(registry: Any, n_readings: int) -> list[tuple[str, bytes]]:
    """Telemetry messages of every device: 10 points of 6 fields (60 readings) each, recent timestamps."""
    fields_per_point, points = 6, 10
    refs = list(registry.devices())
    n_msgs = max(1, n_readings // (fields_per_point * points))
    now = time.time_ns() // 1_000_000 - 3600_000
    out = []
    for m in range(n_msgs):
        ref = refs[m % len(refs)]
        rnd = m // len(refs)
        base = now + rnd * points * 1000
        pts = [(base + i * 1000, {"active_power_kw": 100.0 + i, "energy_import_kwh": 1000.0 + rnd * 10 + i * 0.03,
                                  "energy_export_kwh": 5.0, "voltage_v": 230.1, "current_a": 144.9,
                                  "power_factor": 0.95}) for i in range(points)]
        out.append((telemetry_topic(ref.park.id, ref.enterprise.id, ref.device.id), telemetry_payload(m, pts)))
    return out


def run_service(registry: Any, messages: list[tuple[str, bytes]], kpi_every: int) -> int:
    svc = AnalyticsService(Settings(var_dir=Path("/tmp")), registry)
    folded = 0
    since_kpi = 0
    for topic, payload in messages:
        svc.receive(topic, payload)
        if svc.pending >= svc.max_batch:
            n = svc.fold()
            folded += n
            since_kpi += n
            if since_kpi >= kpi_every:
                svc.compute()
                since_kpi = 0
    folded += svc.fold()
    svc.compute()
    return folded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 M readings over 1,000 devices")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--interval-s", type=float, default=5.0,
                        help="each device's reading interval (the registry polls every 1-5 s; 5 s is the slowest, "
                             "so the most window crossings per reading)")
    args = parser.parse_args()
    repeats = max(3, args.repeats)
    n, devices = (1_000_000, 1_000) if args.quick else (10_000_000, 10_000)
    interval_ms = int(args.interval_s * 1000)
    k.warm_up()
    fold.warm_up()

    sid, ts, value = readings(n, devices, interval_ms)
    m = sid.shape[0]
    lay = Layout(ts, devices)
    print(f"analytics bench: {m:,} counter readings over {devices:,} devices, one every {args.interval_s:g} s each "
          f"(time-major, 1 % redelivered at the end), median of {repeats} (fused kernel and bound: "
          f"{max(11, repeats)})")
    got = kernel_pipeline(sid, ts, value, lay)
    # Same numbers from all of them (a bench of a wrong kernel proves nothing). fold_batch books a counter's run
    # of continuous steps as the difference of its ends, the separate kernels step by step: energy sums agree to
    # their rounding, everything else exactly.
    ref = pandas_pipeline(sid, ts, value, lay)
    before = separate_pipeline(sid, ts, value, lay)
    one_thread = kernel_pipeline(sid, ts, value, lay, threads=1)
    for key, want in ref.items():
        np.testing.assert_allclose(got[key], want, rtol=1e-9, atol=1e-9, err_msg=key)
        for other in (before, one_thread):
            if key.endswith("_e") or key in ("today", "month"):
                np.testing.assert_allclose(got[key], other[key], rtol=1e-12, atol=1e-9, err_msg=key)
            else:
                np.testing.assert_array_equal(got[key], other[key], err_msg=key)

    rates: dict[str, float] = {}
    def resident() -> dict[str, np.ndarray]:
        return new_state(lay, resident=True)

    stages: dict[str, tuple[Callable[..., Any], Callable[[], Any] | None]] = {
        "late scan of fold (2 threads)": (
            lambda: fold._late_two_threads(sid, ts, np.full(devices, np.iinfo(np.int64).min)), None),
        "before, sort_dedupe": (lambda: k.sort_dedupe(sid, ts), None),
        "before, separate kernels": (lambda out: separate_pipeline(sid, ts, value, lay, out), resident),
        "fold_batch (2 threads)": (lambda out: kernel_pipeline(sid, ts, value, lay, out), resident),
        "fold_batch, one-thread form": (lambda out: kernel_pipeline(sid, ts, value, lay, out, threads=1), resident),
        "fold_batch + allocating its state": (lambda: kernel_pipeline(sid, ts, value, lay), None),
        "pandas reference": (lambda: pandas_pipeline(sid, ts, value, lay), None),
    }
    fast_repeats = max(11, repeats)  # the fused kernel's stages and the bound: tens of ms each
    for name, (stage, setup) in stages.items():
        fast = name.startswith(("fold_batch", "late scan"))
        rates[name] = m / timed(stage, fast_repeats if fast else repeats, name, setup)
    bw1 = bandwidth_bytes_per_s(fast_repeats)
    bw2 = bandwidth_bytes_per_s(fast_repeats, threads=2)
    bw = max(bw1, bw2)  # the bound: the most this machine's memory delivers, to one thread or two
    # Bytes the fused kernel must touch: each reading's sid, ts, value once (24 B); each window cell it fills
    # once (energy 8 + covered 8 + quality 1 B); per series its anchor (value, ts), today and month (32 B).
    cells = int((got["hour_q"] != 0).sum() + (got["quarter_q"] != 0).sum())
    must_bytes = 24 * m + 17 * cells + 32 * devices
    per_reading = must_bytes / m

    registry = parse_registry(bench_registry(devices))
    msgs = service_messages(registry, n)
    n_values = run_service(registry, msgs[: max(1, len(msgs) // 20)], 1_000_000)  # warm the caches
    svc_times = []
    for _ in range(repeats):
        t_start = time.perf_counter()
        n_values = run_service(registry, msgs, 1_000_000)
        svc_times.append(time.perf_counter() - t_start)
    rates["service path (bytes → KPIs)"] = n_values / statistics.median(svc_times)

    pandas_rate = rates["pandas reference"]
    print(f"memory bandwidth (numpy sum of 400 MB): 1 thread {bw1 / 1e9:.2f} GB/s, 2 threads {bw2 / 1e9:.2f} GB/s; "
          f"bound {bw / 1e9:.2f} GB/s (the larger)")
    print(f"bytes the fold must touch: (24 × readings + 17 × window cells + 32 × series) / readings = "
          f"{per_reading:.2f} B per reading")
    print(f"{'stage':38s} {'readings/s':>14s} {'× pandas':>10s} {'of bandwidth':>13s} {'readings/CPU-s':>15s}")
    for name, rate in rates.items():
        frac = f"{rate * per_reading / bw:.1%}" if name.startswith("fold_batch") else ""
        cpu = f"{m / CPU_TIMES[name]:,.0f}" if name in CPU_TIMES and "2 threads" not in name else ""
        print(f"{name:38s} {rate:14,.0f} {rate / pandas_rate:10.1f} {frac:>13s} {cpu:>15s}")
    print(f"# service: {len(msgs):,} messages of 60 readings, {n_values:,} readings, KPIs every 1 M readings")
    print(f"one-thread form against the one-thread bound ({bw1 / 1e9:.2f} GB/s): "
          f"{rates['fold_batch, one-thread form'] * per_reading / bw1:.3f}")
    kernel = rates["fold_batch (2 threads)"]
    print(f"kernel_vs_pandas: {kernel / pandas_rate:.1f}")
    print(f"kernel_bandwidth_fraction: {kernel * per_reading / bw:.3f}")
    print(f"service_readings_per_s_per_core: {rates['service path (bytes → KPIs)']:.0f}")


if __name__ == "__main__":
    main()
