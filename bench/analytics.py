"""Analytics throughput: numba kernels vs a plain pandas reference, vs the memory bandwidth, and the whole
service path (MQTT payload bytes → decode → state update → KPIs), all measured in this one run.

    .venv/bin/python bench/analytics.py            # 10 million readings over 10,000 devices
    .venv/bin/python bench/analytics.py --quick    # 1 million over 1,000

A reading is one counter value of one device (kernels) or one field value of a telemetry point (service).
Every figure is the median of `--repeats` (≥ 3) runs. The last three lines are the summary:
`kernel_vs_pandas` (the kernel pipeline sort → counter steps → hourly windows, against pandas doing the
same), `kernel_bandwidth_fraction` (counter_steps' bytes touched per reading × readings/s ÷ the bandwidth of
a numpy sum over a large array), `service_readings_per_s_per_core` (one process, one core).

Where the time goes (py-spy 0.4 record -r 200 --format raw -- python bench/analytics.py --quick):
- service path: 78 % in analytics.decode.decode_batch (msgspec decode 26 %, mapping field names to
  codes 21 %, extending the ts list 13 %, list → array conversions ~24 %, which np.array does ~2× faster
  than the np.fromiter of the first cut), ~11 % the state update (kernels), 2 % receive (topic cache),
  KPIs < 1 %. The first cut validated per value in Python (parkmodel.codec.decode_telemetry) and appended
  per value to array('q') buffers; validation is now one array pass per micro-batch.
- kernels: the first sort_dedupe (two stable comparison argsorts inside numba) ran at 1.7 M readings/s,
  below pandas; it is now a counting sort by series with a per-run sortedness check (~15× faster). The
  pipeline is still bounded by that sort's scattered writes; counter_steps and add_to_buckets are single
  passes whose branches (reset/rollover/gap) keep them below the memory bound.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analytics import kernels as k  # noqa: E402
from analytics.service import AnalyticsService  # noqa: E402
from parkmodel.codec import telemetry_payload  # noqa: E402
from parkmodel.registry import parse_registry  # noqa: E402
from parkmodel.topics import telemetry_topic  # noqa: E402
from smartpark.config import Settings  # noqa: E402

MODULUS = 2**32 * 0.01
MAX_GAP = 15 * 60_000


def timed(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of `fn` over `repeats` runs."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def readings(n: int, devices: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counter readings as they arrive: time-major over devices, 1 % redelivered, a reset and rollovers."""
    rng = np.random.default_rng(seed)
    per = n // devices
    sid = np.tile(np.arange(devices, dtype=np.int64), per)
    step = np.repeat(np.arange(per, dtype=np.int64), devices)
    ts = 1_750_000_000_000 + step * 60_000 + rng.integers(0, 5_000, sid.shape[0])
    rise = rng.uniform(0.0, 2.0, sid.shape[0]).reshape(per, devices).cumsum(axis=0).ravel()
    start = rng.uniform(0, MODULUS, devices)
    value = np.mod(start[sid] + rise, MODULUS)
    dup = rng.integers(0, sid.shape[0], sid.shape[0] // 100)
    return (np.concatenate([sid, sid[dup]]), np.concatenate([ts, ts[dup]]), np.concatenate([value, value[dup]]))


def kernel_pipeline(sid: np.ndarray, ts: np.ndarray, value: np.ndarray, n_series: int) -> np.ndarray:
    order = k.sort_dedupe(sid, ts)
    s, t = sid[order], ts[order]
    t0, delta, q = k.counter_steps(s, t, value[order], np.full(n_series, MODULUS), MAX_GAP,
                                   np.full(n_series, np.nan), np.zeros(n_series, dtype=np.int64))
    first = int(k.bucket_of(t[:1], k.HOUR_MS).min()) - 1
    n_b = int((int(t.max()) + k.BEIJING_OFFSET_MS) // k.HOUR_MS) - first + 1
    e, c, qq = np.zeros((n_series, n_b)), np.zeros((n_series, n_b)), np.zeros((n_series, n_b), dtype=np.int8)
    k.add_to_buckets(s, t0, t, delta, q, np.arange(n_series), first, k.HOUR_MS, e, c, qq)
    return e


def pandas_pipeline(sid: np.ndarray, ts: np.ndarray, value: np.ndarray) -> pd.Series:
    """The same computation written plainly in pandas (continuous steps split over hours by time)."""
    df = pd.DataFrame({"sid": sid, "ts": ts, "value": value})
    d = df.reset_index().sort_values(["sid", "ts", "index"]).drop_duplicates(["sid", "ts"], keep="last")
    g = d.groupby("sid")
    prev, prev_ts = g["value"].shift(), g["ts"].shift()
    delta = d["value"] - prev
    roll = (delta < 0) & (-delta > 0.5 * MODULUS)
    reset = (delta < 0) & ~roll & (d["value"] <= k.RESET_FRACTION * prev)
    delta = delta.where(~roll, delta + MODULUS).where(~reset, d["value"])
    steps = pd.DataFrame({"sid": d["sid"], "t0": prev_ts, "t1": d["ts"], "delta": delta}).dropna()
    b0 = (steps["t0"].astype(np.int64) + k.BEIJING_OFFSET_MS) // k.HOUR_MS
    b1 = (steps["t1"] - 1 + k.BEIJING_OFFSET_MS) // k.HOUR_MS
    edge = (b1 * k.HOUR_MS - k.BEIJING_OFFSET_MS).astype(np.float64)
    frac1 = ((steps["t1"] - np.maximum(edge, steps["t0"])) / (steps["t1"] - steps["t0"])).where(b0 != b1, 1.0)
    first = pd.DataFrame({"sid": steps["sid"], "b": b0, "e": steps["delta"] * (1 - frac1)})
    last = pd.DataFrame({"sid": steps["sid"], "b": b1, "e": steps["delta"] * frac1})
    return pd.concat([first, last]).groupby(["sid", "b"])["e"].sum()


def bandwidth_bytes_per_s(repeats: int) -> float:
    big = np.ones(400_000_000 // 8)
    big.sum()
    return big.nbytes / timed(big.sum, repeats)


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
    args = parser.parse_args()
    repeats = max(3, args.repeats)
    n, devices = (1_000_000, 1_000) if args.quick else (10_000_000, 10_000)
    k.warm_up()

    sid, ts, value = readings(n, devices)
    m = sid.shape[0]
    print(f"analytics bench: {m:,} counter readings over {devices:,} devices, median of {repeats}")
    order = k.sort_dedupe(sid, ts)
    s, t, v = sid[order], ts[order], value[order]
    mod = np.full(devices, MODULUS)

    def steps() -> tuple[np.ndarray, ...]:
        return k.counter_steps(s, t, v, mod, MAX_GAP, np.full(devices, np.nan), np.zeros(devices, dtype=np.int64))

    t0, delta, q = steps()
    first = int(k.bucket_of(t[:1], k.HOUR_MS).min()) - 1
    n_b = int((int(t.max()) + k.BEIJING_OFFSET_MS) // k.HOUR_MS) - first + 1

    def buckets() -> None:
        e, c, qq = np.zeros((devices, n_b)), np.zeros((devices, n_b)), np.zeros((devices, n_b), dtype=np.int8)
        k.add_to_buckets(s, t0, t, delta, q, np.arange(devices), first, k.HOUR_MS, e, c, qq)

    def today() -> None:
        k.window_total(s, t0, t, delta, q, int(t.min()), int(t.max()) + 1, np.zeros(devices))

    rates: dict[str, float] = {}
    rates["sort_dedupe"] = m / timed(lambda: k.sort_dedupe(sid, ts), repeats)
    rates["counter_steps"] = s.shape[0] / timed(steps, repeats)
    rates["add_to_buckets (hourly)"] = s.shape[0] / timed(buckets, repeats)
    rates["window_total (today)"] = s.shape[0] / timed(today, repeats)
    rates["kernel pipeline"] = m / timed(lambda: kernel_pipeline(sid, ts, value, devices), repeats)
    # Same numbers from both (a bench of a wrong kernel proves nothing).
    ref = pandas_pipeline(sid, ts, value)
    got = kernel_pipeline(sid, ts, value, devices)
    assert np.isclose(ref.sum(), got.sum(), rtol=1e-9), (ref.sum(), got.sum())
    rates["pandas reference"] = m / timed(lambda: pandas_pipeline(sid, ts, value), repeats)
    bw = bandwidth_bytes_per_s(repeats)
    # counter_steps reads sid, ts, value (24 B) and writes t0, delta, quality (17 B) per reading.
    bytes_per_reading = {"counter_steps": 41, "add_to_buckets (hourly)": 33, "window_total (today)": 33,
                         "sort_dedupe": 16}

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
    print(f"memory bandwidth (numpy sum of 400 MB): {bw / 1e9:.2f} GB/s")
    print(f"{'stage':32s} {'readings/s':>14s} {'× pandas':>10s} {'of bandwidth':>13s}")
    for name, rate in rates.items():
        frac = f"{rate * bytes_per_reading[name] / bw:.0%}" if name in bytes_per_reading else ""
        print(f"{name:32s} {rate:14,.0f} {rate / pandas_rate:10.1f} {frac:>13s}")
    print(f"service: {len(msgs):,} messages of 60 readings, {n_values:,} readings, KPIs every 1 M readings")
    print(f"kernel_vs_pandas: {rates['kernel pipeline'] / pandas_rate:.1f}")
    print(f"kernel_bandwidth_fraction: {rates['counter_steps'] * bytes_per_reading['counter_steps'] / bw:.2f}")
    print(f"service_readings_per_s_per_core: {rates['service path (bytes → KPIs)']:.0f}")


if __name__ == "__main__":
    main()
