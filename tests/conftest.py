"""Shared fixtures: real Mosquitto and influxd on free loopback ports, unique names, leak checks.

Every test gets its own broker (Mosquitto starts in about 0.1 s); influxd is started once per session and
every test gets its own database. Ids carry a unique fragment (`uid`) so nothing collides.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from deploy.services import RunningService, influxd, mosquitto
from parkmodel.registry import Registry, parse_registry


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RunningService]:
    """A real Mosquitto of the test's own on a free loopback port (anonymous, persistent sessions).

    One per test (it starts in about 0.1 s): retained messages and persistent sessions of one test can
    never reach another.
    """
    with mosquitto(tmp_path / "mosquitto") as service:
        yield service


@pytest.fixture(scope="session")
def influx(services_dir: Path) -> Iterator[RunningService]:
    """A real influxd (InfluxDB 1.x) on a free loopback port, data in a temporary folder."""
    with influxd(services_dir / "influxd") as service:
        yield service


@pytest.fixture
def influx_url(influx: RunningService) -> str:
    return f"http://{influx.host}:{influx.port}"


@pytest.fixture
def influx_db(influx_url: str) -> Iterator[str]:
    """A fresh InfluxDB database for one test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    httpx.post(f"{influx_url}/query", data={"q": f'CREATE DATABASE "{name}"'}).raise_for_status()
    yield name
    httpx.post(f"{influx_url}/query", data={"q": f'DROP DATABASE "{name}"'})


@pytest.fixture
def uid() -> str:
    """A short unique id fragment, valid inside contract ids."""
    return uuid.uuid4().hex[:8]


def make_registry(uid: str, devices: list[dict[str, Any]] | None = None, *, enterprises: int = 1) -> Registry:
    """A small registry whose ids all carry `uid`, so tests never see each other's topics.

    Park `p{uid}`, enterprises `e{uid}-{n}`, gateway `g{uid}-{n}`; `devices` (each a dict with at
    least `id`, `role`, `template`) go to the first enterprise.
    """
    default = [
        {"id": f"m{uid}", "role": "grid_meter", "template": "acrel_dtsd1352"},
        {"id": f"pv{uid}", "role": "pv", "template": "huawei_sun2000", "rated_kw": 100},
    ]
    ents = []
    for n in range(enterprises):
        ents.append({
            "id": f"e{uid}-{n}", "name": f"企业{n}", "land_area_mu": 100, "contracted_capacity_kw": 1000,
            "gateways": [{"id": f"g{uid}-{n}", "devices": (devices or default) if n == 0 else []}],
        })
    return parse_registry({"version": 1, "parks": [{"id": f"p{uid}", "name": "测试园区", "enterprises": ents}]})


@pytest.fixture
def small_registry(uid: str) -> Registry:
    return make_registry(uid)


@pytest.fixture(autouse=True)
def no_leaked_processes_or_threads() -> Iterator[None]:
    """Fail a test that leaves a child process or a thread behind."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    threads_before = set(threading.enumerate())
    yield
    leaked: list[str] = []
    for _ in range(50):  # give a terminating process a moment to be reaped
        leaked = [f"{p.pid} {' '.join(p.cmdline()[:3])}" for p in me.children(recursive=True)
                  if p.pid not in before and p.status() != psutil.STATUS_ZOMBIE]
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        if not leaked and not threads:
            return
        threading.Event().wait(0.1)
    if leaked:
        pytest.fail(f"test left processes behind: {leaked}")
    pytest.fail(f"test left threads behind: {[t.name for t in threads]}")


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running on its loop."""
    yield
    me = asyncio.current_task()
    for _ in range(20):
        pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if not pending:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"test left tasks behind: {[t.get_name() + ' ' + repr(t.get_coro()) for t in pending]}")
