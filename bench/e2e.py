"""Register change in a simulated grid meter -> park KPI frame on the dashboard WebSocket, at 10x the demo park.

One command: `python bench/e2e.py [--scale 10] [--trials 20] [--quick]`. The demo registry's enterprises are
replicated `--scale` times with new ids (devices, gateways, sub-meter parents renamed), then the whole pipeline
runs in-process (deploy.stack.LocalStack: simulators -> edge agents -> Mosquitto -> ingest -> InfluxDB ->
analytics -> API), Mosquitto and influxd on free ports. A WebSocket client on /api/v1/live (authenticated with
the stack's operations API key) watches the park's KPI frames. Each trial pins one grid meter's active power
30 MW above (or back below) its level and times until a KPI frame's `grid_import_kw` moved by more than half
of that. The baseline is what the pipeline waits by design: the meter's poll interval plus analytics'
publish interval (on average half of each). Last line: `e2e_latency_p99_s: X`.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import orjson
import yaml
from _common import median, percentile, result
from websockets.asyncio.client import connect

from deploy.services import influxd, mosquitto
from deploy.stack import LocalStack
from parkmodel.registry import DEFAULT_REGISTRY, parse_registry
from smartpark.config import load_settings

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


async def run(args: argparse.Namespace, work: Path, mqtt_port: int, influx_url: str) -> tuple[list[float], float]:
    registry = parse_registry(replicate(yaml.safe_load(DEFAULT_REGISTRY.read_text()), args.scale))
    devices = sum(1 for _ in registry.devices())
    park = next(p for p in registry.parks if any(d.device.role.value == "grid_meter" and d.park.id == p.id
                                                 for d in registry.devices()))
    meter = next(d.device for d in registry.devices() if d.park.id == park.id and d.device.role.value == "grid_meter")
    base = (meter.poll_interval_s + 2.0) / 2  # analytics publishes every 2 s by default
    print(f"# {devices} devices in {len(registry.parks)} parks; park {park.id}, meter {meter.id} "
          f"(poll {meter.poll_interval_s} s)", flush=True)
    settings = load_settings(mqtt={"port": mqtt_port}, influx={"url": influx_url, "database": "e2e"},
                             var_dir=work / "var")
    latencies: list[float] = []
    async with LocalStack(settings, registry, work / "edge") as stack:
        assert stack.park is not None
        url = stack.api_url.replace("http://", "ws://") + "/api/v1/live"
        async with connect(url, additional_headers=stack.api_headers, max_size=None) as ws:
            latest: list[tuple[float, float]] = []  # (arrival, grid_import_kw) of the park's frames

            async def receive() -> None:
                async for text in ws:
                    frame = orjson.loads(text)
                    if frame.get("type") == "kpi" and frame.get("park") == park.id:
                        value = grid_import(frame)
                        if value is not None:
                            latest.append((time.monotonic(), value))

            receiver = asyncio.create_task(receive(), name="e2e-ws")
            try:
                deadline = time.monotonic() + 120
                while len(latest) < 3:  # the pipeline is warm once a few KPI frames came through
                    if time.monotonic() > deadline:
                        raise TimeoutError("no KPI frame for the park within 120 s")
                    await asyncio.sleep(0.1)
                level = latest[-1][1]
                low = None
                for trial in range(args.trials):
                    up = trial % 2 == 0
                    if up:
                        low = level
                    threshold = (low or 0.0) + STEP_KW / 2
                    seen = len(latest)
                    started = time.monotonic()
                    if up:
                        stack.park.set_point(meter.id, "active_power_kw", STEP_KW + max(0.0, level))
                    else:
                        stack.park.clear(meter.id)
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
                try:
                    await receiver
                except (asyncio.CancelledError, Exception):
                    pass
    return latencies, base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10, help="copies of each demo enterprise")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="short run for `make bench`")
    args = parser.parse_args()
    if args.quick:
        args.trials = 6
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with mosquitto(work / "mq") as mq, influxd(work / "influx") as db:
            lat, base = asyncio.run(run(args, work, mq.port, f"http://{db.host}:{db.port}"))
    result("e2e_designed_wait_s", base)
    result("e2e_latency_p50_s", median(lat))
    result("e2e_latency_p50_vs_designed_wait", median(lat) / base, ".2f")
    result("e2e_latency_p99_s", percentile(lat, 0.99))


if __name__ == "__main__":
    main()
