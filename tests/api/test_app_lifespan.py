"""What the app's lifespan owns: one alert store and one economic data store for all requests (closed at
shutdown), and the registry file's watcher, so serving the registry never reads the disk."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx
import pytest
import yaml

from api.app import auth_store_path, create_app
from api.auth.store import AuthStore
from api.registry_source import RegistrySource
from deploy.services import RunningService
from parkmodel.registry import Registry
from tests.api.conftest import ServeFactory, api_settings, write_registry
from tests.conftest import make_registry


def write_atomic(registry: Registry, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(registry.model_dump(mode="json", exclude_defaults=True), allow_unicode=True),
                   encoding="utf-8")
    tmp.replace(path)


async def test_stores_are_opened_once_and_closed_at_shutdown(broker: RunningService, influx_url: str,
                                                             influx_db: str, uid: str, tmp_path: Path) -> None:
    settings = api_settings(broker.host, broker.port, influx_url, influx_db, tmp_path / "var")
    registry = make_registry(uid)
    write_registry(registry, Path(settings.registry))
    app = create_app(settings, registry)
    auth = {"Authorization": f"Bearer {AuthStore(auth_store_path(settings)).create_key('ops', 'operations')[1]}"}
    async with app.router.lifespan_context(app):
        alerts, economy = app.state.alert_store, app.state.economy_store
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            answers = await asyncio.gather(*(client.get(path, headers=auth)
                                             for path in ["/api/v1/alerts", "/api/v1/economy"] * 5))
        assert [r.status_code for r in answers] == [200] * 10
        assert app.state.alert_store is alerts and app.state.economy_store is economy  # never replaced
    with pytest.raises(sqlite3.ProgrammingError):  # closed with the app
        alerts._db.execute("SELECT 1")


async def test_registry_source_watches_the_file_and_serves_from_memory(tmp_path: Path, uid: str) -> None:
    path = tmp_path / "registry.yaml"
    first = make_registry(uid)
    write_atomic(first, path)
    seen: list[Registry] = []
    async with RegistrySource(path, first, on_change=seen.append, interval_s=0.05) as source:
        path.unlink()  # current() does no I/O: a missing file changes nothing until the watcher sees a new one
        assert source.current() is first
        write_atomic(make_registry(uid, enterprises=2), path)  # someone else's edit
        async with asyncio.timeout(5):
            while source.current() is first:  # noqa: ASYNC110 - the watcher's task swaps it
                await asyncio.sleep(0.02)
        assert len(source.current().parks[0].enterprises) == 2 and seen == [source.current()]

        edited = await source.edit(lambda doc: doc["parks"][0].update(name="改名园区"))
        await asyncio.sleep(0.3)  # several polls: our own write is not loaded again
        assert source.current() is edited and seen[-1] is edited and len(seen) == 2


async def test_served_app_picks_up_an_external_registry_edit(serve: ServeFactory, uid: str) -> None:
    async with serve(make_registry(uid)) as api, api.client(prefix="/api/v1") as ops:
        assert (await ops.get(f"/enterprises/e{uid}-1")).status_code == 404
        write_atomic(make_registry(uid, enterprises=2), Path(api.settings.registry))
        async with asyncio.timeout(5):
            while (await ops.get(f"/enterprises/e{uid}-1")).status_code != 200:  # noqa: ASYNC110 - polls the API
                await asyncio.sleep(0.1)
