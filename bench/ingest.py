"""Readings/s that ingest stores in InfluxDB, against InfluxDB taking the very same lines alone.

One command: `python bench/ingest.py [--devices 10000] [--readings 400000] [--points-per-message 10]
[--repeats 3] [--quick]`. Starts its own Mosquitto and influxd (deploy.services, free ports) and runs ingest
as a subprocess (`python -m ingest`), so its CPU is its own and the three share the machine's cores.

Per repeat (median of `--repeats`):
  raw     the lines ingest would produce for the backlog (same Translator), gzip'd in 5,000-line batches,
          written by 2 concurrent HTTP writers into a fresh database: the database alone.
  stored  the same readings, contract v1 payloads of `--points-per-message` readings of 8 fields from
          `--devices` devices, queued in the broker (QoS 1) for ingest's persistent session, then drained by
          ingest: from its session starting to its last write acknowledged, verified by counting the points
          in InfluxDB. Ingest's CPU per 100k readings comes from psutil on the ingest process.
Then a live phase: a load generator publishes at `--live-rate` readings/s while probes measure the time
from publish to the reading being queryable in InfluxDB (p50, p99).
Last line: `stored_vs_raw_influx: X`.

Where the time goes (py-spy on the ingest process, `--profile`):
  before, 10 readings/message: ~20 % `repr` of every float and an f-string per line (lineproto.float_fields),
  ~17 % msgspec decode into a Point struct and dict per reading plus the per-field range loop
  (parkmodel.codec), ~14 % resolving each device's route on its first message, ~15 % aiomqtt/paho receive,
  gzip ~7 %; one InfluxDB request at a time, so the database idled while ingest formatted the next batch.
  before, 1 reading/message: per-message overhead ruled: aiomqtt's iterator (a task and an asyncio.wait per
  message) ~20 %, both writer tasks woken by every message ~10 %, paho ~25 %.
  after: ingest.fastpath (two msgspec passes in C, the JSON number text reused as line protocol) ~20 %,
  paho/aiomqtt receive and PUBACK ~30 %, HTTP ~10 %; queued messages taken straight off aiomqtt's queue,
  writers woken only by a first or a full batch, 2 concurrent writers, no gzip over loopback, the registry
  out of the garbage collector's sight (gc.freeze). CPU per 100k readings: 1.66 -> ~0.75-1.0 s (10/message),
  7.6 -> 3.0 s (1/message).
  then, with ingest at 0.65-0.73 s per 100k: paho's receive alone took 44 µs a 10-reading message (a script
  draining 40,000 queued QoS 1 messages through aiomqtt with manual acks, process CPU per message; cProfile of
  it): for MQTT 5 a `Properties` object built and cleared per PUBLISH (14 µs a decode_publish), one packet per
  readable event with a `recv` per header byte, and per PUBACK its own packet, self-pipe wake-up and `send`.
  ingest.mqtt.IngestPahoClient reads 64 KiB at a time and handles every packet in it, decodes a plain QoS 1
  PUBLISH directly and sends the PUBACKs settled together as one write: 13-15 µs a message. Ingest 0.42-0.49 s
  per 100k readings; what remains: the fast path's two msgspec passes and line formatting ~28 %, MQTT receive
  ~23 %, HTTP writes ~13 %.
  Fairness: each repeat drops the raw database before the stored phase (its cache snapshots and compactions had
  run during the stored phase, charged to it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aiomqtt
from _common import (
    big_registry,
    device_topics,
    influx_count,
    influx_create,
    influx_query,
    ingest_env,
    ingest_process,
    median,
    meter_fields,
    percentile,
    prometheus_values,
    raw_influx_write,
    result,
    wait_metric,
    write_yaml,
)

from deploy.services import free_port, influxd, mosquitto
from ingest.translate import Translator
from parkmodel.codec import telemetry_payload
from parkmodel.registry import parse_registry


def backlog(topics: list[str], readings: int, per_message: int, t0: int) -> list[tuple[str, bytes]]:
    """(topic, payload) messages holding `readings` readings, round-robin over the devices."""
    messages = []
    n_msgs = readings // per_message
    for m in range(n_msgs):
        dev = m % len(topics)
        k = m // len(topics)  # this device's k-th message
        base = t0 + k * per_message * 1000
        points = [(base + j * 1000, meter_fields(m * per_message + j)) for j in range(per_message)]
        messages.append((topics[dev], telemetry_payload(k, points)))
    return messages


async def publish_all(host: str, port: int, messages: list[tuple[str, bytes]], concurrency: int = 2000) -> None:
    client = aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V5, identifier=f"bench-pub-{os.getpid()}")
    client.pending_calls_threshold = 10 * concurrency
    async with client:
        for i in range(0, len(messages), concurrency):
            await asyncio.gather(*(client.publish(t, p, qos=1) for t, p in messages[i:i + concurrency]))


def warm_series(influx_url: str, db: str, series: list[str], ts_ms: int) -> None:
    """Create the database and one point per device series (before the timed window): steady state, where every
    device has reported before, not the one-off cost of creating 10,000 series."""
    influx_create(influx_url, db)
    asyncio.run(raw_influx_write(influx_url, db, [f"{s} active_power_kw=0 {ts_ms}" for s in series]))


async def end_session(mq: tuple[str, int], client_id: str) -> None:
    """Connect as `client_id` with a clean start and no session expiry: the broker drops its session."""
    async with aiomqtt.Client(mq[0], mq[1], identifier=client_id, protocol=aiomqtt.ProtocolVersion.V5,
                              clean_start=True):
        pass


def stored_run(tag: str, registry_path: Path, mq: tuple[str, int], influx_url: str,
               messages: list[tuple[str, bytes]], total: int, warm: tuple[list[str], int], others: dict[str, int],
               profile: Path | None = None) -> tuple[float, dict[str, float]]:
    """Drain a queued backlog through an ingest process.

    Returns:
        readings/s stored, and CPU seconds per 100k readings of ingest and of each process in `others`.
    """
    db = f"ing{tag}"
    env = ingest_env(registry_path, mq[1], influx_url, db, tag)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with ingest_process(env, port) as proc:  # creates the schema and the persistent session, then leaves
        wait_metric(url, "ingest_mqtt_sessions_total", 1, proc, 60)
    # After the schema: into its DEFAULT retention policy, where ingest writes and the count below looks.
    warm_series(influx_url, db, *warm)
    asyncio.run(publish_all(mq[0], mq[1], messages))
    with ingest_process(env, port) as proc:
        procs = {"ingest": psutil.Process(proc.pid)} | {k: psutil.Process(pid) for k, pid in others.items()}
        started = wait_metric(url, "ingest_mqtt_sessions_total", 1, proc, 60, poll_s=0.005)
        cpu0 = {k: sum(p.cpu_times()[:2]) for k, p in procs.items()}
        spy = None
        if profile is not None:  # collapsed stacks of the drain, for `flamegraph` or reading by eye
            spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(proc.pid),
                                    "--format", "raw", "-o", str(profile), "--rate", "200", "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ended = wait_metric(url, "ingest_points_written_total", total, proc, 600)
        m = prometheus_values(url)
        batches = m.get("ingest_batches_written_total", 0.0)
        print(f"#   ingest: {batches:.0f} batches of {total / max(1.0, batches):,.0f} points on average, "
              f"mean batch latency {m.get('ingest_batch_latency_seconds_sum', 0.0) / max(1.0, batches):.3f} s",
              flush=True)
        cpu1 = {k: sum(p.cpu_times()[:2]) for k, p in procs.items()}
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
    # The repeat's persistent session would stay subscribed in its own group, and the broker would queue (and
    # persist) a copy of every later repeat's message for it: end it, so repeats do not slow each other down.
    asyncio.run(end_session(mq, env["SMARTPARK_INGEST__CLIENT_ID"]))
    stored = influx_count(influx_url, db) - len(warm[0])
    if stored != total:
        raise RuntimeError(f"InfluxDB holds {stored} readings, {total} were queued")
    elapsed = ended - started
    return stored / elapsed, {k: (cpu1[k] - cpu0[k]) / stored * 100_000 for k in procs}


async def live_latency(mq: tuple[str, int], influx_url: str, db: str, topics: list[str], rate: float,
                       per_message: int, seconds: float) -> tuple[list[float], float]:
    """Publish at `rate` readings/s; probes measure publish -> queryable. Returns (latencies, offered rate)."""
    client = aiomqtt.Client(mq[0], mq[1], protocol=aiomqtt.ProtocolVersion.V5, identifier=f"bench-live-{os.getpid()}")
    client.pending_calls_threshold = 100_000
    probe_topic, load_topics = topics[0], topics[1:]
    latencies: list[float] = []
    sent = 0
    stop = asyncio.Event()

    async def load() -> None:
        nonlocal sent
        tick = 0.05
        msgs_per_tick = max(1, round(rate * tick / per_message))
        seq = 0
        next_at = time.monotonic()
        pending: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            now_ms = int(time.time() * 1000)
            for _ in range(msgs_per_tick):
                t = load_topics[seq % len(load_topics)]
                pts = [(now_ms - (per_message - 1 - j) * 1000, meter_fields(seq + j)) for j in range(per_message)]
                task = asyncio.create_task(client.publish(t, telemetry_payload(seq, pts), qos=1))
                pending.add(task)
                task.add_done_callback(pending.discard)
                seq += 1
                sent += per_message
            next_at += tick
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*pending)

    async def probes() -> None:
        import httpx
        async with httpx.AsyncClient(base_url=influx_url, timeout=10) as http:
            k = 0
            while not stop.is_set():
                ts = int(time.time() * 1000)
                value = 1000.0 + k + 0.5
                t0 = time.perf_counter()
                await client.publish(probe_topic, telemetry_payload(k, [(ts, {**meter_fields(k),
                                                                          "active_power_kw": value})]), qos=1)
                q = f"SELECT active_power_kw FROM telemetry WHERE device='{probe_topic.split('/')[4]}' AND time = {ts}ms"
                while True:
                    r = await http.get("/query", params={"db": db, "q": q, "epoch": "ms"})
                    series = r.json()["results"][0].get("series")
                    if series and series[0]["values"][0][1] == value:
                        break
                    await asyncio.sleep(0.005)
                latencies.append(time.perf_counter() - t0)
                k += 1
                await asyncio.sleep(0.05 + 0.037 * (k % 5))

    async with client:
        started = time.monotonic()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(load())
            tg.create_task(probes())
            await asyncio.sleep(seconds)
            stop.set()
        offered = sent / (time.monotonic() - started)
    return latencies, offered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--readings", type=int, default=400_000, help="readings in each backlog")
    parser.add_argument("--points-per-message", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--live-rate", type=float, default=20_000, help="readings/s of the latency phase")
    parser.add_argument("--live-seconds", type=float, default=15)
    parser.add_argument("--profile", type=Path, help="py-spy collapsed stacks of ingest's first drain here")
    parser.add_argument("--ingest-from", type=Path,
                        help="run the ingest package found in this folder (e.g. an older version, for before/after)")
    parser.add_argument("--quick", action="store_true", help="small run for `make bench`")
    args = parser.parse_args()
    if args.quick:
        args.readings, args.live_seconds, args.live_rate = 100_000, 5, 10_000

    if args.ingest_from:
        os.environ["INGEST_FROM"] = str(args.ingest_from.resolve())
    reg = big_registry(args.devices)
    topics = device_topics(reg)
    t0 = int(time.time() * 1000) - 24 * 3600_000
    messages = backlog(topics, args.readings, args.points_per_message, t0)
    total = len(messages) * args.points_per_message
    translator = Translator(parse_registry(reg))
    lines = [ln for t, p in messages for ln in translator.translate(t, p)]
    series = [translator._routes[t].series for t in topics]
    assert len(lines) == total
    print(f"# {args.devices} devices, {len(messages)} messages x {args.points_per_message} readings x 8 fields "
          f"= {total} readings per repeat; cores: {os.cpu_count()}", flush=True)

    raw_rates, stored_rates, cpus, cpu_ratios = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        registry_path = write_yaml(work / "registry.yaml", reg)
        with mosquitto(work / "mq") as mq, influxd(work / "influx") as db:
            influx_url = f"http://{db.host}:{db.port}"
            for r in range(args.repeats):
                warm_series(influx_url, f"raw{r}", series, t0 - 3600_000)
                influx_ps = psutil.Process(db.process.pid)
                raw_cpu0 = sum(influx_ps.cpu_times()[:2])
                raw = asyncio.run(raw_influx_write(influx_url, f"raw{r}", lines))
                raw_cpu = (sum(influx_ps.cpu_times()[:2]) - raw_cpu0) / total * 100_000
                assert influx_count(influx_url, f"raw{r}") == total + len(series)
                # Its cache snapshots and compactions would otherwise run during the stored phase and be charged
                # to it; the stored database is likewise dropped before the next repeat's raw phase.
                influx_query(influx_url, f"raw{r}", f'DROP DATABASE "raw{r}"')
                rate, cpu = stored_run(f"r{r}", registry_path, (mq.host, mq.port), influx_url, messages, total,
                                       (series, t0 - 3600_000),
                                       {"mosquitto": mq.process.pid, "influxd": db.process.pid},
                                       args.profile if r == 0 else None)
                raw_rates.append(raw)
                stored_rates.append(rate)
                cpus.append(cpu["ingest"])
                # Noise-proof view: CPU the stored path spends per reading (ingest, broker, database) against
                # what the database alone spent per line, i.e. the ratio were both CPU-bound on the same cores.
                cpu_ratios.append(raw_cpu / sum(cpu.values()))
                print(f"# repeat {r + 1}: raw {raw:,.0f} lines/s, stored {rate:,.0f} readings/s "
                      f"({rate / raw:.2f}); CPU s per 100k readings: "
                      + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()) + f"; influxd alone {raw_cpu:.2f}", flush=True)
                influx_query(influx_url, f"ingr{r}", f'DROP DATABASE "ingr{r}"')  # stored_run's database
            env = ingest_env(registry_path, mq.port, influx_url, "live", "live")
            port = free_port()
            with ingest_process(env, port) as proc:
                wait_metric(f"http://127.0.0.1:{port}/metrics", "ingest_mqtt_sessions_total", 1, proc, 60)
                lat, offered = asyncio.run(live_latency((mq.host, mq.port), influx_url, "live", topics,
                                                        args.live_rate, args.points_per_message, args.live_seconds))
    raw_m, stored_m = median(raw_rates), median(stored_rates)
    print(f"# live phase: offered {offered:,.0f} readings/s, {len(lat)} probes")
    result("raw_influx_lines_per_s", raw_m, ",.0f")
    result("stored_readings_per_s", stored_m, ",.0f")
    result("ingest_cpu_s_per_100k_readings", median(cpus))
    result("publish_to_queryable_p50_s", median(lat))
    result("publish_to_queryable_p99_s", percentile(lat, 0.99))
    result("cpu_bound_stored_vs_raw_influx", median(cpu_ratios), ".2f")
    result("stored_vs_raw_influx", stored_m / raw_m, ".2f")


if __name__ == "__main__":
    main()
