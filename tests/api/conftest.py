"""Fixtures of the API tests: the real app served by uvicorn on a free loopback port, in the test's loop,
with its own auth store and registry file under the test's tmp_path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml

from api.app import auth_store_path, create_app
from api.auth.store import AuthStore
from deploy.services import RunningService, free_port
from parkmodel.registry import Registry
from smartpark.config import InfluxSettings, MqttSettings, Settings


@dataclass
class RunningApi:
    url: str
    ws_url: str
    settings: Settings
    store: AuthStore
    _keys: dict[tuple[str, str | None], str] = field(default_factory=dict)

    def key(self, role: str = "operations", enterprise: str | None = None) -> str:
        """An API key of `role` (created once per role and enterprise)."""
        if (role, enterprise) not in self._keys:
            self._keys[role, enterprise] = self.store.create_key(f"test-{role}", role, enterprise)[1]
        return self._keys[role, enterprise]

    def headers(self, role: str = "operations", enterprise: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key(role, enterprise)}"}

    def client(self, role: str = "operations", enterprise: str | None = None, prefix: str = "") -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url + prefix, headers=self.headers(role, enterprise))


def api_settings(mqtt_host: str, mqtt_port: int, influx_url: str, database: str, var_dir: Path) -> Settings:
    return Settings(mqtt=MqttSettings(host=mqtt_host, port=mqtt_port),
                    influx=InfluxSettings(url=influx_url, database=database, timeout_s=5),
                    var_dir=var_dir, registry=var_dir / "registry.yaml")


def write_registry(registry: Registry, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(registry.model_dump(mode="json", exclude_defaults=True), allow_unicode=True,
                                   sort_keys=False), encoding="utf-8")


@asynccontextmanager
async def serve_api(settings: Settings, registry: Registry, **options: object) -> AsyncIterator[RunningApi]:
    """Serve `create_app(settings, registry)` with uvicorn until the block ends (the registry is written to
    `settings.registry` first, as the file is the source of registry edits)."""
    write_registry(registry, Path(settings.registry))
    port = free_port()
    config = uvicorn.Config(create_app(settings, registry, **options), host="127.0.0.1", port=port,  # type: ignore[arg-type]
                            log_level="warning", ws="websockets-sansio", lifespan="on")
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
        yield RunningApi(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", settings,
                         AuthStore(auth_store_path(settings)))
    finally:
        server.should_exit = True
        await task


ServeFactory = Callable[..., AbstractAsyncContextManager[RunningApi]]


@pytest.fixture
def serve(broker: RunningService, influx_url: str, influx_db: str, tmp_path: Path) -> ServeFactory:
    """Serve an app wired to the real broker and a fresh InfluxDB database."""

    def factory(registry: Registry, **options: object) -> AbstractAsyncContextManager[RunningApi]:
        return serve_api(api_settings(broker.host, broker.port, influx_url, influx_db, tmp_path / "var"), registry,
                         **options)

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
