"""1, 2 and 4 ingest workers on one shared subscription: per-worker rate, even split, nothing lost or doubled.

One command: `python bench/scaleout.py [--messages 20000] [--points-per-message 10] [--repeats 3] [--quick]`.
Starts Mosquitto and influxd on free ports; each worker is its own `python -m ingest` process (same group,
own client id). With all workers subscribed, a publisher sends `--messages` QoS 1 telemetry messages, each a
distinct (device, timestamp) set, over 10,000 devices. Then:
  complete  InfluxDB holds exactly the points sent (none lost),
  single    the workers' `ingest_points_written` add up to exactly the points sent (none written twice: a
            duplicate delivery would be counted by the worker that wrote it, though InfluxDB would hide it),
  split     each worker's share of the points (even = max/min within 1.5).
Per-worker rate = its points / the time from the first publish to the last write (median of `--repeats`).
Last line: `scaleout_complete: yes` or `no`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aiomqtt
from _common import (
    big_registry,
    device_topics,
    influx_count,
    ingest_env,
    ingest_process,
    median,
    meter_fields,
    prometheus_values,
    result,
    wait_metric,
    write_yaml,
)

from deploy.services import free_port, influxd, mosquitto
from parkmodel.codec import telemetry_payload


def messages_for(topics: list[str], n: int, per_message: int, t0: int) -> list[tuple[str, bytes]]:
    out = []
    for m in range(n):
        k = m // len(topics)
        pts = [(t0 + (k * per_message + j) * 1000, meter_fields(m + j)) for j in range(per_message)]
        out.append((topics[m % len(topics)], telemetry_payload(k, pts)))
    return out


async def publish(host: str, port: int, messages: list[tuple[str, bytes]]) -> None:
    client = aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V5, identifier=f"scaleout-{os.getpid()}")
    client.pending_calls_threshold = 100_000
    async with client:
        for i in range(0, len(messages), 2000):
            await asyncio.gather(*(client.publish(t, p, qos=1) for t, p in messages[i:i + 2000]))


def run_workers(n: int, tag: str, registry_path: Path, mq: tuple[str, int], influx_url: str,
                messages: list[tuple[str, bytes]], total: int) -> dict[str, object]:
    db = f"scale{tag}"
    ports = [free_port() for _ in range(n)]
    with contextlib.ExitStack() as stack:
        procs = []
        for w, port in enumerate(ports):
            env = ingest_env(registry_path, mq[1], influx_url, db, tag)
            env["SMARTPARK_INGEST__CLIENT_ID"] = f"ingest-{tag}-w{w}"  # one group, one client id per worker
            procs.append(stack.enter_context(ingest_process(env, port)))
        for proc, port in zip(procs, ports, strict=True):
            wait_metric(f"http://127.0.0.1:{port}/metrics", "ingest_mqtt_sessions_total", 1, proc, 60)
        started = time.perf_counter()
        asyncio.run(publish(mq[0], mq[1], messages))
        deadline = time.monotonic() + 300
        while True:
            written = [prometheus_values(f"http://127.0.0.1:{p}/metrics").get("ingest_points_written_total", 0.0)
                       for p in ports]
            if sum(written) >= total or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        time.sleep(0.5)  # anything written twice would show up now
        written = [prometheus_values(f"http://127.0.0.1:{p}/metrics").get("ingest_points_written_total", 0.0)
                   for p in ports]
    stored = influx_count(influx_url, db)
    return {"elapsed": elapsed, "per_worker": [w / elapsed for w in written], "shares": written,
            "complete": stored == total, "single": sum(written) == total, "stored": stored}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--points-per-message", type=int, default=10)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="short run for `make bench`")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.repeats = 5_000, 1
    reg = big_registry(args.devices)
    topics = device_topics(reg)
    total = args.messages * args.points_per_message
    all_ok = True
    summary: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        registry_path = write_yaml(Path(tmp) / "registry.yaml", reg)
        with mosquitto(Path(tmp) / "mq") as mq, influxd(Path(tmp) / "influx") as db:
            influx_url = f"http://{db.host}:{db.port}"
            for n in (1, 2, 4):
                rates, totals = [], []
                for r in range(args.repeats):
                    t0 = int(time.time() * 1000) - 3600_000 * (1 + r + 10 * n)
                    msgs = messages_for(topics, args.messages, args.points_per_message, t0)
                    out = run_workers(n, f"n{n}r{r}", registry_path, (mq.host, mq.port), influx_url, msgs, total)
                    shares = out["shares"]
                    assert isinstance(shares, list)
                    even = min(shares) > 0 and max(shares) / min(shares) <= 1.5
                    ok = bool(out["complete"]) and bool(out["single"])
                    all_ok = all_ok and ok and even
                    per_worker = out["per_worker"]
                    assert isinstance(per_worker, list)
                    rates.append(median(per_worker))
                    totals.append(sum(per_worker))
                    print(f"# {n} worker(s), repeat {r + 1}: {sum(per_worker):,.0f} points/s in all, per worker "
                          + ", ".join(f"{x:,.0f}" for x in per_worker)
                          + f"; shares {[int(s) for s in shares]}; stored {out['stored']}/{total}; "
                          f"complete {out['complete']}, none doubled {out['single']}, even {even}", flush=True)
                summary[n] = median(totals)
                result(f"workers_{n}_points_per_s", median(totals), ",.0f")
                result(f"workers_{n}_per_worker_points_per_s", median(rates), ",.0f")
    result("scaleout_4_vs_1", summary[4] / summary[1], ".2f")
    result("scaleout_complete", "yes" if all_ok else "no")


if __name__ == "__main__":
    main()
