"""Fixtures of the API tests: the real app served by uvicorn on a free loopback port, in the test's loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from api.app import create_app
from deploy.services import RunningService, free_port
from parkmodel.registry import Registry
from smartpark.config import InfluxSettings, MqttSettings, Settings


@dataclass(frozen=True)
class RunningApi:
    url: str
    ws_url: str
    settings: Settings


def api_settings(mqtt_host: str, mqtt_port: int, influx_url: str, database: str) -> Settings:
    return Settings(mqtt=MqttSettings(host=mqtt_host, port=mqtt_port),
                    influx=InfluxSettings(url=influx_url, database=database, timeout_s=5))


@asynccontextmanager
async def serve_api(settings: Settings, registry: Registry) -> AsyncIterator[RunningApi]:
    """Serve `create_app(settings, registry)` with uvicorn until the block ends."""
    port = free_port()
    config = uvicorn.Config(create_app(settings, registry), host="127.0.0.1", port=port, log_level="warning",
                            ws="websockets-sansio", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(), name=f"uvicorn-{port}")
    try:
        for _ in range(200):
            if server.started or task.done():
                break
            await asyncio.sleep(0.02)
        if task.done():
            task.result()
        assert server.started, "uvicorn did not start"
        yield RunningApi(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", settings)
    finally:
        server.should_exit = True
        await task


ServeFactory = Callable[[Registry], AbstractAsyncContextManager[RunningApi]]


@pytest.fixture
def serve(broker: RunningService, influx_url: str, influx_db: str) -> ServeFactory:
    """Serve an app wired to the real broker and a fresh InfluxDB database."""

    def factory(registry: Registry) -> AbstractAsyncContextManager[RunningApi]:
        return serve_api(api_settings(broker.host, broker.port, influx_url, influx_db), registry)

    return factory


async def wait_connected(api: RunningApi) -> None:
    """Until /healthz says the KPI feed is connected to the broker."""
    async with httpx.AsyncClient(base_url=api.url) as client:
        for _ in range(100):
            body = (await client.get("/healthz")).json()
            if body["checks"]["mqtt"]["ok"]:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"the KPI feed never connected: {body}")
