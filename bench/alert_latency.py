"""Safety alert latency: a simulator register crossing a threshold → the signed webhook arriving.

One command: `python bench/alert_latency.py [--trials 60] [--poll-interval 0.5]`. Starts its own Mosquitto
(deploy.services, free port) and runs in one event loop: a simulated gas detector (Modbus TCP server), the
real edge agent polling it, the alert engine subscribed over MQTT, and a webhook receiver (asyncio streams)
that verifies each signature. Per trial the detector's `lel_pct` register is pinned to 30 %LEL (above the
25 %LEL first level) and the time until the signed `raised` webhook arrives is measured; then the value goes
back to 0 and the bench waits for `cleared` before the next trial.

The baseline is the poll interval itself: a reading waits on average half of it before the edge agent reads
it, so p50 ≈ poll/2 + pipeline time. Last lines: `alert_latency_p50_s`, `alert_latency_p99_s`,
`poll_interval_s`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from _common import percentile, result

from analytics.alerts.delivery import SIGNATURE_HEADER, verify
from analytics.alerts.engine import AlertEngine, EngineOptions
from analytics.alerts.subscribers import Subscriber
from deploy.services import free_port, mosquitto
from deploy.stack import gateway_configs
from edge_agent.agent import EdgeAgent
from edge_agent.config import parse_gateway_config
from parkmodel.registry import parse_registry
from simulators.park import SimulatedPark
from smartpark.config import Settings

SECRET = b"bench-secret"


class Receiver:
    """Minimal HTTP/1.1 webhook receiver: records (arrival time, event, signature ok) per request."""

    def __init__(self) -> None:
        self.port = free_port()
        self.events: asyncio.Queue[tuple[float, dict[str, Any], bool]] = asyncio.Queue()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readline():
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = h.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                arrived = time.perf_counter()
                ok = verify(SECRET, body, headers.get(SIGNATURE_HEADER.lower()))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                self.events.put_nowait((arrived, orjson.loads(body), ok))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def next_event(self, event: str, within: float) -> tuple[float, dict[str, Any], bool]:
        async with asyncio.timeout(within):
            while True:
                arrived, body, ok = await self.events.get()
                if body["event"] == event and body["alert"]["rule"] == "gas_lel":
                    return arrived, body, ok


async def run(trials: int, poll_s: float, work: Path) -> list[float]:
    registry = parse_registry({"version": 1, "parks": [{"id": "bench", "name": "基准园区", "enterprises": [{
        "id": "bench-ent", "name": "基准企业", "land_area_mu": 100, "gateways": [{"id": "bench-gw", "devices": [
            {"id": "bench-gd", "role": "gas_detector", "template": "gas_detector", "poll_interval_s": poll_s,
             "location": "罐区"}]}]}]}]})
    latencies: list[float] = []
    with mosquitto(work / "mosquitto") as broker:
        settings = Settings(var_dir=work / "var", mqtt={"host": broker.host, "port": broker.port})
        async with Receiver() as rx:
            sub = Subscriber(id="em", url=f"http://127.0.0.1:{rx.port}/hook", secret=SECRET.decode())
            options = EngineOptions(subscribe=True, client_id="bench-alerts", group="bench", tick_s=1.0)
            async with (
                AlertEngine(settings, registry, subscribers=[sub], options=options) as engine,
                SimulatedPark(registry, tick_s=0.05) as park,
            ):
                async with asyncio.timeout(10):
                    await engine.wait_connected()
                (cfg,) = [parse_gateway_config(c, "bench") for c in
                          gateway_configs(registry, settings, park.layout_dict()["devices"], work)]
                async with EdgeAgent(cfg):
                    await asyncio.sleep(2 * poll_s)
                    for n in range(trials):
                        await asyncio.sleep(poll_s * (0.37 * n % 1))  # spread the crossing over the poll phase
                        crossed = time.perf_counter()
                        park.set_point("bench-gd", "lel_pct", 30.0)
                        arrived, body, ok = await rx.next_event("raised", 10 + 4 * poll_s)
                        if not ok:
                            raise SystemExit("webhook signature did not verify")
                        latencies.append(arrived - crossed)
                        park.set_point("bench-gd", "lel_pct", 0.0)
                        await rx.next_event("cleared", 10 + 4 * poll_s)
                        with contextlib.suppress(Exception):  # acknowledged + cleared: closed, fresh alert next
                            assert engine.store is not None
                            engine.store.acknowledge(body["alert"]["id"], "bench", "")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--poll-interval", type=float, default=0.5, help="gas detector poll interval, s")
    args = parser.parse_args()
    if args.trials < 1:
        parser.error("--trials must be >= 1")
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="sp-alert-bench-") as tmp:
        latencies = asyncio.run(run(args.trials, args.poll_interval, Path(tmp)))
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    print(f"trials: {len(latencies)}  min {min(latencies):.3f} s  max {max(latencies):.3f} s")
    result("alert_latency_p50_vs_poll_interval", p50 / args.poll_interval)
    result("alert_latency_p50_s", p50)
    result("alert_latency_p99_s", p99)
    result("poll_interval_s", args.poll_interval)


if __name__ == "__main__":
    main()
