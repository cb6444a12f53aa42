"""Register change in a simulated grid meter -> park KPI frame on the dashboard WebSocket, at 10x the demo park.

One command: `python bench/e2e.py [--scale 10] [--trials 20] [--quick]`. The demo registry's enterprises are
replicated `--scale` times with new ids (devices, gateways, sub-meter parents renamed). Each component runs as
its own process, as in production: simulators (`smartpark simulate park`), ingest (`python -m ingest`),
analytics and the API (`smartpark analytics|api`), Mosquitto and influxd on free ports; this process runs the
edge agents (one per gateway). (In one process - deploy.stack.LocalStack - 1,690 devices saturate one core and
the latency measured is that process' queue, 15-25 s, not the pipeline's.) A WebSocket client on /api/v1/live,
authenticated with an operations API key created for the run, watches the park's KPI frames. Each trial pins
one grid meter's active power 30 MW above its level (simulator control channel) or clears it, and times until a
KPI frame's `grid_import_kw` crossed the midpoint. The baseline is what the pipeline waits by design: the
meter's poll interval plus analytics' publish interval (on average half of each).
Last line: `e2e_latency_p99_s: X`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import logging
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import httpx
import orjson
import yaml
from _common import ROOT, median, percentile, result, subprocess_env
from websockets.asyncio.client import connect

from api.app import auth_store_path
from api.auth.store import AuthStore
from deploy.services import free_port, influxd, mosquitto, port_answers
from deploy.stack import gateway_configs
from edge_agent.agent import EdgeAgent
from edge_agent.config import parse_gateway_config
from parkmodel.registry import DEFAULT_REGISTRY, Registry, parse_registry
from smartpark.config import Settings, load_settings

STEP_KW = 30_000.0


def replicate(data: dict[str, Any], scale: int) -> dict[str, Any]:
    """The registry with every enterprise copied `scale` times (copy 0 keeps its ids, copy r gets `-r{r}`)."""
    out = copy.deepcopy(data)
    for park in out["parks"]:
        enterprises = []
        for ent in park.get("enterprises", []):
            for r in range(scale):
                suffix = f"-r{r}" if r else ""
                e = copy.deepcopy(ent)
                e["id"] += suffix
                for gw in e.get("gateways", []):
                    gw["id"] += suffix
                    for dev in gw.get("devices", []):
                        dev["id"] += suffix
                        if dev.get("parent"):
                            dev["parent"] += suffix
                enterprises.append(e)
        park["enterprises"] = enterprises
    return out


def grid_import(frame: dict[str, Any]) -> float | None:
    data = frame.get("data") or {}
    kpi = data.get("kpi") if isinstance(data, dict) else None
    value = kpi.get("grid_import_kw") if isinstance(kpi, dict) else None
    return float(value) if isinstance(value, int | float) else None


def spawn(stack: contextlib.ExitStack, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
    log = (log_dir / f"{name}.log").open("wb")
    stack.callback(log.close)
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT)

    def stop() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    stack.callback(stop)


def wait_for(check: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready within {timeout:.0f} s")
        time.sleep(0.2)


async def trials(args: argparse.Namespace, registry: Registry, settings: Settings, layout: dict[str, Any],
                 api_url: str, api_key: str, control: str, work: Path, park_id: str, meter_id: str) -> list[float]:
    latencies: list[float] = []
    configs = [parse_gateway_config(c, f"<gateway {c['gateway']}>")
               for c in gateway_configs(registry, settings, layout, work / "edge")]
    async with contextlib.AsyncExitStack() as edges, httpx.AsyncClient(base_url=control, timeout=10) as sim:
        for cfg in configs:
            await edges.enter_async_context(EdgeAgent(cfg))
        print(f"# {len(configs)} edge agents polling", flush=True)
        url = api_url.replace("http://", "ws://") + "/api/v1/live"
        async with connect(url, additional_headers={"Authorization": f"Bearer {api_key}"}, max_size=None) as ws:
            latest: list[tuple[float, float]] = []  # (arrival, grid_import_kw) of the park's frames

            async def receive() -> None:
                async for text in ws:
                    frame = orjson.loads(text)
                    if frame.get("type") == "kpi" and frame.get("park") == park_id:
                        value = grid_import(frame)
                        if value is not None:
                            latest.append((time.monotonic(), value))

            receiver = asyncio.create_task(receive(), name="e2e-ws")
            try:
                deadline = time.monotonic() + 120
                while len(latest) < 3:  # warm once a few KPI frames came through
                    if time.monotonic() > deadline:
                        raise TimeoutError("no KPI frame for the park within 120 s")
                    await asyncio.sleep(0.1)
                await asyncio.sleep(5)  # let the first polls of every device settle
                level = latest[-1][1]
                low = level
                for trial in range(args.trials):
                    up = trial % 2 == 0
                    if up:
                        low = level
                    threshold = low + STEP_KW / 2
                    seen = len(latest)
                    started = time.monotonic()
                    if up:
                        r = await sim.post("/set", json={"device": meter_id, "point": "active_power_kw",
                                                         "value": STEP_KW + max(0.0, level)})
                    else:
                        r = await sim.post("/fault", json={"device": meter_id, "fault": "clear"})
                    r.raise_for_status()
                    while True:
                        fresh = [(t, v) for t, v in latest[seen:] if (v > threshold) == up]
                        if fresh:
                            latencies.append(fresh[0][0] - started)
                            level = fresh[0][1]
                            break
                        if time.monotonic() - started > 60:
                            raise TimeoutError(f"trial {trial}: no KPI frame reflected the change within 60 s")
                        await asyncio.sleep(0.01)
                    print(f"trial {trial + 1}/{args.trials}: {latencies[-1]:.3f} s", flush=True)
                    await asyncio.sleep(0.3 + 0.37 * (trial % 5))  # de-phase from poll and publish schedules
            finally:
                receiver.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await receiver
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10, help="copies of each demo enterprise")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="short run for `make bench`")
    args = parser.parse_args()
    if args.quick:
        args.trials = 6
    logging.basicConfig(level=logging.ERROR)
    data = replicate(yaml.safe_load(DEFAULT_REGISTRY.read_text()), args.scale)
    registry = parse_registry(data)
    refs = list(registry.devices())
    meter = next(r for r in refs if r.device.role.value == "grid_meter")
    park_id = meter.park.id
    base = (meter.device.poll_interval_s + 2.0) / 2  # analytics publishes every 2 s by default
    print(f"# {len(refs)} devices in {len(registry.parks)} parks; park {park_id}, meter {meter.device.id} "
          f"(poll {meter.device.poll_interval_s} s)", flush=True)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as procs:
        work = Path(tmp)
        registry_path = work / "registry.yaml"
        registry_path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        mq = procs.enter_context(mosquitto(work / "mq"))
        db = procs.enter_context(influxd(work / "influx"))
        influx_url = f"http://{db.host}:{db.port}"
        api_port, control_port = free_port(), free_port()
        gateways = sum(len(e.gateways) for p in registry.parks for e in p.enterprises)
        base_port = 20000 + random.randrange(0, 20000 - gateways)
        env = subprocess_env(SMARTPARK_REGISTRY=str(registry_path), SMARTPARK_VAR_DIR=str(work / "var"),
                             SMARTPARK_LOG_LEVEL="WARNING", SMARTPARK_MQTT__PORT=str(mq.port),
                             SMARTPARK_INFLUX__URL=influx_url, SMARTPARK_INFLUX__DATABASE="e2e")
        settings = load_settings(None, registry=registry_path, var_dir=work / "var", mqtt={"port": mq.port},
                                 influx={"url": influx_url, "database": "e2e"})
        _, api_key = AuthStore(auth_store_path(settings)).create_key("bench-e2e", "operations")
        layout_path = work / "layout.yaml"
        spawn(procs, "simulators", ["-m", "smartpark.cli", "simulate", "park", "--registry", str(registry_path),
                                    "--base-port", str(base_port), "--control-port", str(control_port),
                                    "--layout-out", str(layout_path)], env, work)
        spawn(procs, "ingest", ["-m", "ingest"], env, work)
        spawn(procs, "analytics", ["-m", "smartpark.cli", "analytics"], env, work)
        spawn(procs, "api", ["-m", "smartpark.cli", "api", "--host", "127.0.0.1", "--port", str(api_port)], env, work)
        wait_for(layout_path.exists, "simulators")
        wait_for(lambda: port_answers("127.0.0.1", api_port), "api")
        layout = yaml.safe_load(layout_path.read_text(encoding="utf-8"))["devices"]
        lat = asyncio.run(trials(args, registry, settings, layout, f"http://127.0.0.1:{api_port}", api_key,
                                 f"http://127.0.0.1:{control_port}", work, park_id, meter.device.id))
    result("e2e_designed_wait_s", base)
    result("e2e_latency_p50_s", median(lat))
    result("e2e_latency_p50_vs_designed_wait", median(lat) / base, ".2f")
    result("e2e_latency_p99_s", percentile(lat, 0.99))


if __name__ == "__main__":
    main()
