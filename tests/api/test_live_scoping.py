"""The live WebSocket carries only what the caller may see: KPI totals for operations, one enterprise's KPIs
for an enterprise, safety events for emergency management; no credential, no stream."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.routes import live as live_route
from deploy.services import RunningService
from parkmodel.topics import alerts_topic, kpi_topic, safety_topic
from tests.api.conftest import RunningApi, ServeFactory, wait_connected
from tests.api.scoped import scoped_registry


def alert(uid: str, category: str, enterprise: str, device: str, severity: str = "warning") -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {"id": f"{uid}-{device}", "category": category, "rule": "r", "severity": severity, "state": "raised",
            "park": f"a{uid}", "enterprise": enterprise, "device": device, "point": "lel_pct", "location": "车间",
            "value": 30.0, "limit": 20.0, "message_zh": "告警", "message_en": "alarm", "raised_at": now,
            "updated_at": now, "count": 1, "acked_by": None, "acked_at": None, "ack_comment": None,
            "cleared_at": None, "closed_at": None, "escalated": False}


@asynccontextmanager
async def live(api: RunningApi, role: str, enterprise: str | None = None, query: str = ""
               ) -> AsyncIterator[ClientConnection]:
    """The live stream as the dashboard opens it: the credential in the first frame, not in the URL."""
    async with connect(f"{api.ws_url}/api/v1/live{query}") as ws:
        await ws.send(json.dumps({"type": "auth", "token": api.key(role, enterprise)}))
        yield ws


async def frames(ws: ClientConnection, quiet_s: float = 0.6) -> list[dict[str, Any]]:
    """Everything the server sends until it has been quiet for `quiet_s`."""
    out = []
    while True:
        try:
            async with asyncio.timeout(quiet_s):
                out.append(json.loads(await ws.recv()))
        except TimeoutError:
            return out


async def test_live_stream_is_filtered_by_role(serve: ServeFactory, broker: RunningService, uid: str) -> None:
    a, e1, e2 = f"a{uid}", f"a{uid}-e1", f"a{uid}-e2"
    kpi = {"load_kw": 300.0, "generation_kw": 40.0}
    message = {"v": 1, "ts": int(time.time() * 1000), "park": a, "kpi": kpi,
               "enterprises": {e1: {"load_kw": 100.0}, e2: {"load_kw": 200.0}}}
    async with serve(scoped_registry(uid)) as api:
        await wait_connected(api)
        api.store.create_user("ent1", "ent1-password", "enterprise", e1)

        async with live(api, "operations") as ops, live(api, "enterprise", e1) as ent, \
                live(api, "emergency") as emerg, \
                connect(api.ws_url + "/api/v1/live", additional_headers=api.headers("enterprise", e2)) as ent2:
            async with aiomqtt.Client(broker.host, broker.port) as client:
                await client.publish(kpi_topic(a), orjson.dumps(message), qos=1)
                await client.publish(alerts_topic(a, e1), orjson.dumps(
                    {"v": 1, "event": "raised", "alert": alert(uid, "energy", e1, f"{a}-m1")}), qos=1)
                await client.publish(alerts_topic(a, e2), orjson.dumps(
                    {"v": 1, "event": "raised", "alert": alert(uid, "energy", e2, f"{a}-m2")}), qos=1)
                await client.publish(safety_topic(a), orjson.dumps(
                    {"v": 1, "event": "raised", "alert": alert(uid, "safety", e2, f"{a}-fire2", "critical")}), qos=1)
            got = {name: await frames(ws) for name, ws in (("ops", ops), ("ent", ent), ("emerg", emerg),
                                                            ("ent2", ent2))}

    assert [f["type"] for f in got["ops"]] == ["kpi", "alert", "alert", "safety"]
    assert got["ops"][0]["data"] == message
    ent_kpi, *ent_rest = got["ent"]
    assert ent_kpi["type"] == "kpi" and "kpi" not in ent_kpi["data"]  # never the park total
    assert ent_kpi["data"]["enterprises"] == {e1: {"load_kw": 100.0}}
    assert [(f["type"], f["alert"]["enterprise"]) for f in ent_rest] == [("alert", e1)]
    assert [(f["type"], f["alert"]["severity"]) for f in got["emerg"]] == [("safety", "critical")]
    assert [f["type"] for f in got["ent2"]] == ["kpi", "alert", "safety"]
    assert got["ent2"][0]["data"]["enterprises"] == {e2: {"load_kw": 200.0}}


async def refused(ws: ClientConnection) -> None:
    first = json.loads(await ws.recv())
    assert first["type"] == "error" and first["error"]["code"] == "unauthorized"
    with pytest.raises(ConnectionClosed) as info:
        await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4401


@pytest.mark.parametrize("first", [None, "not json", {"subscribe": []}, {"type": "auth", "token": "nonsense"},
                                   {"type": "auth", "token": "sp_000000000000_forged"}])
async def test_live_stream_refuses_without_a_valid_credential(serve: ServeFactory, uid: str, first: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_route, "AUTH_TIMEOUT_S", 0.3)
    async with serve(scoped_registry(uid)) as api, connect(f"{api.ws_url}/api/v1/live") as ws:
        if first is not None:
            await ws.send(first if isinstance(first, str) else json.dumps(first))
        await refused(ws)


async def test_a_token_in_the_url_is_neither_accepted_nor_logged(serve: ServeFactory, uid: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_route, "AUTH_TIMEOUT_S", 0.3)
    records: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    capture = Capture()
    async with serve(scoped_registry(uid)) as api:
        key = api.key("operations")
        loggers = [logging.getLogger(n) for n in ("uvicorn.error", "uvicorn.access")]
        levels = [lg.level for lg in loggers]
        for lg in loggers:  # the tests run uvicorn at WARNING; production logs connects at INFO
            lg.setLevel(logging.INFO)
            lg.addHandler(capture)
        try:
            async with connect(f"{api.ws_url}/api/v1/live?token={key}") as ws:  # an old client
                await refused(ws)
            async with connect(f"{api.ws_url}/api/v1/live?api_key={key}&x=1"):
                pass
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.removeHandler(capture)
                lg.setLevel(level)
    logged = "\n".join(records)
    assert "/api/v1/live?token=[redacted]" in logged and "api_key=[redacted]&x=1" in logged
    assert key not in logged and key.split("_")[-1] not in logged


async def test_enterprise_cannot_subscribe_to_other_parks(serve: ServeFactory, uid: str) -> None:
    async with serve(scoped_registry(uid)) as api, live(api, "enterprise", f"a{uid}-e1") as ws:
        await ws.send(json.dumps({"subscribe": [f"b{uid}"]}))
        reply = json.loads(await ws.recv())
        assert reply["type"] == "error" and reply["error"]["code"] == "not_found"
        await ws.send(json.dumps({"subscribe": [f"a{uid}"]}))
        assert json.loads(await ws.recv()) == {"type": "subscribed", "parks": [f"a{uid}"]}
