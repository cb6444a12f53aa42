"""Device reads/s of one edge agent (poll, decode, store-and-forward, publish) against pymodbus alone.

One command: `python bench/edge.py [--devices 1000] [--gateways 20] [--seconds 10] [--repeats 3] [--quick]`.
Plain pymodbus TCP servers run in a subprocess (`--gateways` servers, `--devices` unit ids spread over them,
each answering a 64-register block, template `block64_meter`); Mosquitto is started on a free port.

Per repeat (median of `--repeats`):
  raw     one pymodbus client per server reads the same 64-register blocks back to back, round-robin over
          its units, for `--seconds`: the request rate pymodbus and the servers sustain alone.
  edge    one EdgeAgent polls every device with an interval short enough to saturate it (0.05 s), decodes,
          appends each reading to its SQLite store and publishes QoS 1; device-reads/s = readings acknowledged
          by the broker (PUBACK) per second, the store-and-forward path included. Under this load a device is
          read ~10 times a second and the publisher puts the readings that wait for it into one message (the
          repeat line shows messages/s and readings per message); at 1 Hz each message carries one reading.
Then jitter: the same agent at 1 Hz for `--seconds`; poll-cycle jitter = how late each poll starts after its
slot (p99, first cycle excluded). Last lines: `edge_vs_raw_pymodbus: X`, `poll_jitter_p99_ms: X`.

Where the time goes (py-spy on this process, saturated phase, `py-spy record --format raw -- python
bench/edge.py --quick --repeats 1`):
  before: one SQLite transaction per reading appended and per message acknowledged (~18 %, COMMIT alone 11 %),
  aiomqtt logging "pending publish calls" on every publish beyond 10 (~3 %), a fresh `random.Random` seeded
  from os.urandom for every block read (~2 %), a Prometheus label lookup per poll; and shutting the agent
  down hung when pymodbus swallowed the cancellation of a poller in the middle of a read.
  jitter: every poller started on the same grid, so 1,000 timers fired in the same instant each second and
  the last one ran ~100 ms late (p50 6 ms, p99 up to 155 ms); each device now keeps a stable phase of its
  own (crc32 of its id): p50 0.5 ms, p99 5-34 ms.
  after (appends and acks batched per event-loop iteration, shared RNG, cached metric child, cancel guard):
  pymodbus client framing and transactions ~35 %, paho/aiomqtt publish and PUBACK ~20 %, asyncio ~28 %,
  SQLite ~7 %, decode ~3 %. The publisher awaits every PUBACK of a drain before it fetches the next rows, so
  publishing lags polling when saturated; the agent idles ~12 % of the time.

Issue #7, second round (`flock /tmp/bench.lock python bench/edge.py`, medians of 3 x 10 s, 1,000 devices):
  before: raw 16,917 reads/s, edge 2,050 published (4,241 polled), ratio 0.12, jitter p99 33.7 ms. Agent at
  ~99 % of a core, Modbus servers ~33 %: the agent was the bottleneck. Profile: asyncio 31 % (1,000 poller
  tasks, their timers and the link locks they queued on), paho 16 % + aiomqtt 6 % (a task, an Event, a
  `wait_for` and an O(n) pending-call scan per publish; paho's default of 20 in flight queued the rest and
  rescanned its queue on every PUBACK), SQLite 14 % (a commit per loop iteration, twice: appends and acks),
  pymodbus 11 %, decode 3 %. Waiting hid one more cost: with a window refilled only once half of it was
  acknowledged, the window sat full at ~1,300 messages/s with everything idle; Mosquitto leaves Nagle on
  (no `set_tcp_nodelay`), so it holds PUBACKs until we send again, i.e. until our 40 ms delayed ACK.
  changes, in the order measured (single 6 s repeats, so +-0.03): a sliding window of QoS-1 messages sent
  through paho directly, PUBACKs deleting their rows from paho's callback, the window capped by the broker's
  Receive Maximum (0.12 -> 0.30); one task per Modbus link driving its devices from a heap instead of one task
  per device (polls 5.4k -> 5.9k/s; the publisher then lagged: 0.26); block decoding compiled to one `struct`
  read per point, range checks precomputed (decode 12 % -> 4 %) and acks joining the appends' commit (polls
  9.9k/s, 0.32); group commits every 5 ms (0.38); refilling the window on every PUBACK, not at half (the
  Nagle stall gone: the publisher keeps up, one reading per message, ~6k/s); acked ids deleted as ranges and
  live rows handed to the publisher from memory instead of read back (SQLite 20 % -> 17 %); publish cycles
  that take at most ~10 % of the loop, so under saturation each device's readings since its last message
  leave together (0.41 -> 0.55).
  after: raw 17,421, edge 9,537 published (9,732 polled; ~2,400 messages/s, ~3.9 readings each), ratio
  0.55, jitter p99 1.7 ms (p50 0.5). With the pause disabled (one reading per message, 3 x 6 s): 0.41. At
  1 Hz (the jitter phase) every message still carries one reading: the pause is a fraction of a millisecond
  when the loop is idle, at most 0.5 s when polling saturates it. Profile now: asyncio 27 % (Modbus socket
  writes and reads included), pymodbus 17 %, SQLite 17 % (the INSERTs themselves), paho 13 % (three recv
  calls per PUBACK), poller 10 %, transport 5 %, decode 4 %, publisher 3 %, Prometheus 2 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aiomqtt
from _common import ROOT, median, percentile, result, subprocess_env
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pymodbus.client import AsyncModbusTcpClient

from deploy.services import free_port, mosquitto, port_answers
from edge_agent.agent import EdgeAgent
from edge_agent.config import parse_gateway_config
from edge_agent.registermap import load_template

TEMPLATE = "block64_meter"
VALUES = {"voltage_v": 231.5, "current_a": 125.25, "active_power_kw": 812.5, "reactive_power_kvar": 3.25,
          "power_factor": 0.875, "frequency_hz": 50.0, "energy_import_kwh": 123456.0, "energy_export_kwh": 42.0}


def block_registers() -> list[int]:
    t = load_template(TEMPLATE)
    (block,) = t.blocks()
    regs = [0] * block.count
    for p in t.points:
        for i, r in enumerate(p.encode(VALUES[p.point], t.byte_order, t.word_order)):
            regs[p.address - block.address + i] = r
    return regs


async def serve(units_per_server: list[int]) -> None:
    """Subprocess: plain pymodbus servers (no hooks), ports printed as one JSON line; runs until SIGTERM."""
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    regs = block_registers()
    servers, ports = [], []
    for n_units in units_per_server:
        port = free_port()
        devices = [SimDevice(u, simdata=([SimData(0, count=16, values=False, datatype=DataType.BITS)],
                                         [SimData(0, count=16, values=False, datatype=DataType.BITS)],
                                         [SimData(0, count=len(regs), values=regs, datatype=DataType.REGISTERS)],
                                         [SimData(0, count=len(regs), values=regs, datatype=DataType.REGISTERS)]))
                   for u in range(1, n_units + 1)]
        server = ModbusTcpServer(devices, address=("127.0.0.1", port), ignore_missing_devices=True)
        await server.serve_forever(background=True)
        servers.append(server)
        ports.append(port)
    print(json.dumps(ports), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for s in servers:
        await s.shutdown()


def split(devices: int, gateways: int) -> list[int]:
    return [devices // gateways + (1 if g < devices % gateways else 0) for g in range(gateways)]


async def raw_rate(ports: list[int], units: list[int], seconds: float) -> float:
    count = len(block_registers())
    reads = 0

    async def one(port: int, n_units: int) -> None:
        nonlocal reads
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
        await client.connect()
        try:
            u = 0
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                r = await client.read_holding_registers(0, count=count, device_id=u + 1)
                assert not r.isError() and len(r.registers) == count
                reads += 1
                u = (u + 1) % n_units
        finally:
            client.close()

    started = time.monotonic()
    async with asyncio.TaskGroup() as tg:
        for port, n in zip(ports, units, strict=True):
            tg.create_task(one(port, n))
    return reads / (time.monotonic() - started)


def agent_config(ports: list[int], units: list[int], mq_port: int, store: Path, interval_s: float,
                 tag: str) -> dict[str, object]:
    devices = []
    for g, (port, n) in enumerate(zip(ports, units, strict=True)):
        for u in range(1, n + 1):
            devices.append({"id": f"g{g}d{u}", "template": TEMPLATE, "interval_s": interval_s, "timeout_s": 2.0,
                            "transport": {"kind": "tcp", "host": "127.0.0.1", "port": port, "unit_id": u}})
    return {"park": "bench", "enterprise": "bench-ent", "gateway": f"gw-{tag}",
            "mqtt": {"host": "127.0.0.1", "port": mq_port, "client_id": f"edge-bench-{tag}"},
            "store": {"path": str(store), "batch_points": 100}, "devices": devices}


async def edge_run(cfg: dict[str, object], seconds: float, warmup_s: float) -> tuple[float, float, list[float], float]:
    """Run an agent; returns (readings acknowledged by the broker per s, polls ok per s, lateness samples,
    MQTT messages acknowledged per s)."""
    config = parse_gateway_config(cfg, "<bench>")
    async with EdgeAgent(config) as agent:
        assert agent.publisher is not None
        await asyncio.wait_for(agent.publisher.connected.wait(), 10)
        await asyncio.sleep(warmup_s)
        store = agent.store
        assert store is not None
        polls0 = sum(c.health.polls_ok for c in agent.coordinators.values())
        depth0 = store.depth
        messages0 = agent.publisher.messages_published
        for c in agent.coordinators.values():
            c.lateness.clear()
        started = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - started
        polls = sum(c.health.polls_ok for c in agent.coordinators.values()) - polls0
        published = polls - (store.depth - depth0)  # what was read and is no longer waiting in the store
        messages = agent.publisher.messages_published - messages0
        lateness = [x for c in agent.coordinators.values() for x in c.lateness]
    return published / elapsed, polls / elapsed, lateness, messages / elapsed


async def park_a_subscriber(mq_port: int) -> None:
    """A persistent session subscribed to the bench's telemetry, then disconnected: the broker queues for it, so
    every publish has a matching subscriber (the edge agent keeps readings whose PUBACK says "no matching
    subscribers") and no consumer competes with the agent for the CPU."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client = aiomqtt.Client("127.0.0.1", mq_port, identifier="bench-edge-sink", protocol=aiomqtt.ProtocolVersion.V5,
                            clean_start=False, properties=props)
    async with client:
        await client.subscribe("sp/v1/bench/#", qos=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--gateways", type=int, default=20, help="Modbus TCP servers the devices sit behind")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="short run for `make bench`")
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # subprocess mode: JSON list of units per server
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(json.loads(args.serve)))
        return
    if args.quick:
        args.seconds = 4
    logging.basicConfig(level=logging.ERROR)
    units = split(args.devices, args.gateways)
    print(f"# {args.devices} devices x {len(block_registers())} registers behind {args.gateways} Modbus TCP servers; "
          f"cores: {os.cpu_count()}", flush=True)
    servers = subprocess.Popen([sys.executable, __file__, "--serve", json.dumps(units)], cwd=ROOT,
                               env=subprocess_env(), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    raws, edges, polled = [], [], []
    try:
        assert servers.stdout is not None
        ports = json.loads(servers.stdout.readline())
        assert all(port_answers("127.0.0.1", p) for p in ports)
        with tempfile.TemporaryDirectory() as tmp, mosquitto(Path(tmp) / "mq") as mq:
            asyncio.run(park_a_subscriber(mq.port))
            for r in range(args.repeats):
                raw = asyncio.run(raw_rate(ports, units, args.seconds))
                cfg = agent_config(ports, units, mq.port, Path(tmp) / f"store{r}.sqlite", 0.05, f"s{r}")
                edge, polls, _, messages = asyncio.run(edge_run(cfg, args.seconds, warmup_s=1.0))
                raws.append(raw)
                edges.append(edge)
                polled.append(polls)
                print(f"# repeat {r + 1}: raw {raw:,.0f} reads/s, edge {edge:,.0f} device-reads/s published "
                      f"({polls:,.0f} polled; {messages:,.0f} messages/s, {edge / max(messages, 1):.1f} readings each), "
                      f"ratio {edge / raw:.2f}", flush=True)
            cfg = agent_config(ports, units, mq.port, Path(tmp) / "jitter.sqlite", 1.0, "jitter")
            rate_1hz, _, lateness, messages_1hz = asyncio.run(edge_run(cfg, args.seconds, warmup_s=1.5))
    finally:
        servers.send_signal(signal.SIGTERM)
        try:
            servers.wait(10)
        except subprocess.TimeoutExpired:
            servers.kill()
            servers.wait()
    print(f"# 1 Hz: {rate_1hz:,.0f} device-reads/s published ({messages_1hz:,.0f} messages/s), "
          f"{len(lateness)} polls timed")
    result("raw_pymodbus_reads_per_s", median(raws), ",.0f")
    result("edge_device_reads_per_s", median(edges), ",.0f")
    result("edge_polls_per_s", median(polled), ",.0f")
    result("poll_jitter_p50_ms", percentile(lateness, 0.5) * 1000, ".1f")
    result("edge_vs_raw_pymodbus", median(edges) / median(raws), ".2f")
    result("poll_jitter_p99_ms", percentile(lateness, 0.99) * 1000, ".1f")


if __name__ == "__main__":
    main()
