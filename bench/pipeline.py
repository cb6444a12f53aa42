"""Time from a register change in a simulated device to the new value in the API, over the real pipeline.

One command: `python bench/pipeline.py [--trials 30]`. Starts its own Mosquitto and influxd on free ports, runs
simulators → edge agent → broker → ingest → InfluxDB → API in-process, then repeatedly pins a new value in a
device's registers and polls `/api/v1/devices/{id}/latest` until it shows. The baseline is the device's poll
interval (the wait the value spends in the register before the edge agent reads it, on average half of it).
Last lines: `register_to_api_p50_s: X`, `register_to_api_p99_s: X`, `poll_interval_s: X`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

# bench/ holds analytics.py: put the project root first so `import analytics` finds the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy.services import influxd, mosquitto
from deploy.stack import LocalStack
from parkmodel.registry import parse_registry
from smartpark.config import load_settings

POLL_S = 1.0


def registry():  # type: ignore[no-untyped-def]
    devices = [{"id": f"m{i}", "role": "load_meter" if i else "grid_meter", "template": "acrel_dtsd1352",
                "poll_interval_s": POLL_S, "rated_kw": 500, **({"parent": "m0"} if i else {})} for i in range(10)]
    return parse_registry({"version": 1, "parks": [{"id": "bench", "name": "bench", "enterprises": [
        {"id": "ent", "name": "ent", "land_area_mu": 10, "gateways": [{"id": "gw", "devices": devices}]}]}]})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(trials: int, work: Path, mqtt_port: int, influx_url: str) -> list[float]:
    settings = load_settings(mqtt={"port": mqtt_port}, influx={"url": influx_url, "database": "bench"},
                             var_dir=work / "var")
    latencies = []
    async with LocalStack(settings, registry(), work / "edge", analytics=False) as stack, httpx.AsyncClient(
            base_url=stack.api_url, headers=stack.api_headers, timeout=5) as api:
        assert stack.park is not None
        for trial in range(trials):
            value = 1000.0 + trial + 0.125
            start = time.monotonic()
            stack.park.set_point("m3", "active_power_kw", value)
            while True:
                r = await api.get("/api/v1/devices/m3/latest")
                got = r.json().get("fields", {}).get("active_power_kw", {}) if r.status_code == 200 else {}
                if got.get("value") == value:
                    break
                await asyncio.sleep(0.01)
            latencies.append(time.monotonic() - start)
            print(f"trial {trial + 1}/{trials}: {latencies[-1]:.3f} s", flush=True)
            await asyncio.sleep(0.137 * (trial % 7))  # de-phase from the poll schedule
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with mosquitto(work / "mq") as mq, influxd(work / "influx") as db:
            lat = asyncio.run(run(args.trials, work, mq.port, f"http://{db.host}:{db.port}"))
    p50, p99 = statistics.median(lat), percentile(lat, 0.99)
    print(f"register_to_api_p50_vs_poll_interval: {p50 / POLL_S:.2f}")
    print(f"register_to_api_p50_s: {p50:.3f}")
    print(f"register_to_api_p99_s: {p99:.3f}")
    print(f"poll_interval_s: {POLL_S}")


if __name__ == "__main__":
    main()
