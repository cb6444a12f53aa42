"""The whole pipeline in one event loop: simulators → edge agents → broker → ingest → InfluxDB → analytics → API.

For integration tests and benchmarks; the broker and InfluxDB are given (started by the caller). In
production and in `make demo` each component runs as its own process instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import uvicorn

from analytics.service import AnalyticsService
from api.app import auth_store_path, create_app
from api.auth.store import AuthStore
from deploy.services import free_port
from edge_agent.agent import EdgeAgent
from edge_agent.config import GatewayConfig, parse_gateway_config
from ingest.service import IngestService
from parkmodel.registry import Registry
from simulators.park import SimulatedPark
from smartpark.config import Settings


def gateway_configs(registry: Registry, settings: Settings, layout: dict[str, Any],
                    store_dir: Path) -> Iterator[dict[str, Any]]:
    """One edge agent config (as plain data) per registry gateway whose devices the layout addresses."""
    for park in registry.parks:
        for ent in park.enterprises:
            for gw in ent.gateways:
                devices = []
                for dev in gw.devices:
                    addr = layout.get(dev.id)
                    if addr is None:
                        continue
                    devices.append({
                        "id": dev.id, "template": dev.template, "interval_s": dev.poll_interval_s, "timeout_s": 1.0,
                        "transport": {"kind": "tcp", "host": addr["host"], "port": addr["port"],
                                      "unit_id": addr["unit_id"]},
                    })
                if not devices:
                    continue
                yield {
                    "park": park.id, "enterprise": ent.id, "gateway": gw.id,
                    "mqtt": {"host": settings.mqtt.host, "port": settings.mqtt.port, "client_id": f"edge-{gw.id}"},
                    "store": {"path": str((store_dir / f"{gw.id}.sqlite").resolve())},
                    "devices": devices,
                }


class LocalStack:
    """`async with LocalStack(settings, registry, work_dir) as stack:` runs every component in-process.

    Args:
        settings: mqtt and influx must point at running services; var_dir is used for local state.
        registry: the park population to simulate.
        work_dir: folder for the edge agents' stores.
        speed: simulated seconds per real second.
        api: also serve the API (on `stack.api_url`).
        analytics: also run the analytics service.
    """

    def __init__(self, settings: Settings, registry: Registry, work_dir: Path, *, speed: float = 1.0,
                 api: bool = True, analytics: bool = True) -> None:
        self.settings = settings
        self.registry = registry
        self.work_dir = work_dir
        self.speed = speed
        self._with_api = api
        self._with_analytics = analytics
        self.park: SimulatedPark | None = None
        self.ingest: IngestService | None = None
        self.analytics: AnalyticsService | None = None
        self.edges: list[EdgeAgent] = []
        self.api_url = ""
        self.api_key = ""  # an operations-center key, sent as `Authorization: Bearer {api_key}`
        self._stack = contextlib.AsyncExitStack()
        self._server: uvicorn.Server | None = None
        self._server_task: asyncio.Task[None] | None = None

    @property
    def api_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def edge_configs(self) -> list[GatewayConfig]:
        assert self.park is not None
        layout = self.park.layout_dict()["devices"]
        return [parse_gateway_config(c, f"<gateway {c['gateway']}>")
                for c in gateway_configs(self.registry, self.settings, layout, self.work_dir)]

    async def __aenter__(self) -> Self:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.ingest = await self._stack.enter_async_context(IngestService(self.settings, self.registry))
            await self.ingest.wait_subscribed()
            if self._with_analytics:
                self.analytics = await self._stack.enter_async_context(AnalyticsService(self.settings, self.registry))
                await self.analytics.wait_subscribed()
            if self._with_api:
                _, self.api_key = AuthStore(auth_store_path(self.settings)).create_key("local-stack", "operations")
                port = free_port()
                config = uvicorn.Config(create_app(self.settings, self.registry), host="127.0.0.1", port=port,
                                        log_level="warning", lifespan="on")
                self._server = uvicorn.Server(config)
                self._server_task = asyncio.create_task(self._server.serve(), name="stack-api")
                while not self._server.started:
                    if self._server_task.done():
                        self._server_task.result()
                    await asyncio.sleep(0.02)
                self.api_url = f"http://127.0.0.1:{port}"
            self.park = await self._stack.enter_async_context(SimulatedPark(self.registry, speed=self.speed))
            for cfg in self.edge_configs():
                self.edges.append(await self._stack.enter_async_context(EdgeAgent(cfg)))
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._stack.aclose()
        finally:
            if self._server is not None and self._server_task is not None:
                self._server.should_exit = True
                await self._server_task
