"""Rules editable through the API (issue 4): an admin's PUT reaches the running engine without a restart.

The real app (uvicorn), the real Mosquitto and influxd, and an alert engine subscribed to the live stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
import uvicorn
import yaml
from fastapi import Depends

from analytics.alerts.engine import AlertEngine
from analytics.alerts.rules import rules_dir_of
from api.app import auth_store_path, create_app
from api.auth.store import AuthStore
from api.deps import _access
from api.main import API_PREFIX
from api.routes import rules as rules_routes
from deploy.services import RunningService, free_port
from parkmodel.codec import telemetry_payload
from parkmodel.registry import Registry
from parkmodel.topics import telemetry_topic
from smartpark.config import Settings
from tests.alerts.conftest import fast, safety_registry
from tests.alerts.test_reload import LOWER_LEL, until
from tests.api.conftest import api_settings, write_registry

pytestmark = pytest.mark.integration


@asynccontextmanager
async def serve_with_rules(settings: Settings, registry: Registry) -> AsyncIterator[tuple[str, AuthStore]]:
    """The real app, with the rules router mounted if `api.main` does not mount it yet."""
    write_registry(registry, Path(settings.registry))
    app = create_app(settings, registry)
    if not any(getattr(r, "path", "").startswith(f"{API_PREFIX}/rules") for r in app.routes):
        app.include_router(rules_routes.router, prefix=API_PREFIX, dependencies=[Depends(_access)])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(), name=f"uvicorn-{port}")
    try:
        async with asyncio.timeout(5):
            while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn sets a flag
                await asyncio.sleep(0.02)
        if task.done():
            task.result()
        yield f"http://127.0.0.1:{port}{API_PREFIX}", AuthStore(auth_store_path(settings))
    finally:
        server.should_exit = True
        await task


def bearer(store: AuthStore, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {store.create_key(f'test-{role}', role)[1]}"}


async def test_admin_lowers_a_park_level_and_the_running_engine_applies_it(
    broker: RunningService, influx_url: str, influx_db: str, uid: str, tmp_path: Path
) -> None:
    settings = api_settings(broker.host, broker.port, influx_url, influx_db, tmp_path / "var")
    registry = safety_registry(uid)
    park, ent, gd = f"p{uid}", f"e{uid}-0", f"gd{uid}"
    options = fast(subscribe=True, group=f"g{uid}", client_id=f"alerts-{uid}", rules_dir=rules_dir_of(settings),
                   watch_s=0.1)
    async with (
        serve_with_rules(settings, registry) as (url, store),
        AlertEngine(settings, registry, options=options) as eng,
        aiomqtt.Client(broker.host, broker.port, identifier=f"t-{uid}") as mqtt,
        httpx.AsyncClient(base_url=url, headers=bearer(store, "admin")) as admin,
        httpx.AsyncClient(base_url=url, headers=bearer(store, "operations")) as ops,
    ):
        async with asyncio.timeout(10):
            await eng.wait_connected()

        async def reading(lel: float, seq: int) -> None:
            ts = time.time_ns() // 1_000_000
            await mqtt.publish(telemetry_topic(park, ent, gd), telemetry_payload(seq, [(ts, {"lel_pct": lel})]), qos=1)
            await until(lambda: eng._seen.get(gd) == ts)

        async def safety_events() -> list[dict[str, Any]]:
            r = await ops.get("/safety-events", params={"park": park})
            assert r.status_code == 200, r.text
            return r.json()["items"]  # type: ignore[no-any-return]

        # 20 %LEL is below the default first level (25): nothing.
        await reading(20.0, 1)
        assert await safety_events() == []

        # Only an admin may change rules; bad input is refused naming the key; nothing is written.
        r = await ops.put(f"/rules/{park}", json=LOWER_LEL)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        bad = {"version": 1, "rules": [{"id": "gas_lel", "clear": 30}]}  # clear above the first level
        r = await admin.put(f"/rules/{park}", json=bad)
        assert r.status_code == 422 and "rules[gas_lel]" in r.json()["error"]["message"]
        r = await admin.put(f"/rules/{park}", content="rules: [{id: gas_lel, levels: oops}]",
                            headers={"Content-Type": "application/yaml"})
        assert r.status_code == 422 and "rules[gas_lel].levels" in r.json()["error"]["message"]
        r = await admin.put(f"/rules/{park}", content="rules: [", headers={"Content-Type": "application/yaml"})
        assert r.status_code == 422 and "not valid YAML" in r.json()["error"]["message"]
        r = await admin.put(f"/rules/{park}", json={"version": 1, "quotas": {"nope": 10}})
        assert r.status_code == 422 and "quotas.nope" in r.json()["error"]["message"]
        assert (await admin.put("/rules/nopark", json=LOWER_LEL)).status_code == 404
        assert not (rules_dir_of(settings) / f"{park}.yaml").exists()

        # The admin lowers the first LEL level to 15 for this park.
        r = await admin.put(f"/rules/{park}", json=LOWER_LEL)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["revision"] == 1 and body["updated_by"]
        lel = next(rule for rule in body["effective"]["rules"] if rule["id"] == "gas_lel")
        assert lel["levels"][0] == {"raise": 15.0, "severity": "warning"} and lel["clear"] == 10
        assert body["history"][0]["changed"] == ["gas_lel"]

        # The running engine picks it up; the same 20 %LEL now raises an alert, no restart.
        await until(lambda: eng.rules.get(park, "gas_lel").levels[0].raise_at == 15)
        await reading(20.0, 2)
        events = await safety_events()
        assert [(e["rule"], e["limit"], e["state"], e["value"]) for e in events] == [("gas_lel", 15.0, "raised", 20.0)]

        # Versioned: a stale base revision conflicts; YAML text is accepted; every version is kept.
        text = yaml.safe_dump({"version": 1, "rules": [{"id": "gas_lel", "clear": 10, "levels": [
            {"raise": 18, "severity": "warning"}, {"raise": 50, "severity": "critical"}]}]})
        yaml_headers = {"Content-Type": "application/yaml"}
        r = await admin.put(f"/rules/{park}", content=text, headers=yaml_headers, params={"base_revision": 0})
        assert r.status_code == 409
        r = await admin.put(f"/rules/{park}", content=text, headers=yaml_headers, params={"base_revision": 1})
        assert r.status_code == 200 and r.json()["revision"] == 2
        first = (await ops.get(f"/rules/{park}/revisions/1")).json()
        assert first["rules"][0]["levels"][0]["raise"] == 15 and first["revision"] == "1"
        listing = (await ops.get("/rules")).json()
        assert listing["defaults"]["revision"] and any(r["id"] == "gas_lel" for r in listing["defaults"]["rules"])
        assert [(p["park"], p["revision"]) for p in listing["parks"]] == [(park, 2)]
        history = (await ops.get(f"/rules/{park}")).json()["history"]
        assert [h["revision"] for h in history] == [1, 2] and all(h["by"] == history[0]["by"] for h in history)

        # Back to the defaults: the override goes, the history stays.
        assert (await ops.delete(f"/rules/{park}")).status_code == 403
        assert (await admin.delete(f"/rules/{park}")).status_code == 204
        await until(lambda: eng.rules.get(park, "gas_lel").levels[0].raise_at == 25)
        view = (await ops.get(f"/rules/{park}")).json()
        assert view["override"] is None and [h["action"] for h in view["history"]] == ["put", "put", "delete"]
        assert view["revision"] == 0
        r = await admin.put(f"/rules/{park}", json=LOWER_LEL)
        assert r.json()["revision"] == 3  # revisions are never reused
        assert r.json()["error"] is None

        # A hand-edited file that does not validate is shown with its error (the engine keeps its rules).
        (rules_dir_of(settings) / f"{park}.yaml").write_text("rules: [{id: gas_lel, clear: 90}]\n", encoding="utf-8")
        view = (await ops.get(f"/rules/{park}")).json()
        assert view["effective"] is None and "rules[gas_lel]" in view["error"]
        assert "rules[gas_lel]" in (await ops.get("/rules")).json()["parks"][0]["error"]
