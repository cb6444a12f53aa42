"""The live WebSocket carries only what the caller may see: KPI totals for operations, one enterprise's KPIs
for an enterprise, safety events for emergency management; no credential, no stream."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiomqtt
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

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

        def url(api: RunningApi, role: str, enterprise: str | None = None) -> str:
            return f"{api.ws_url}/api/v1/live?token={api.key(role, enterprise)}"

        async with connect(url(api, "operations")) as ops, connect(url(api, "enterprise", e1)) as ent, \
                connect(url(api, "emergency")) as emerg, \
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


@pytest.mark.parametrize("query", ["", "?token=nonsense", "?token=sp_000000000000_forged"])
async def test_live_stream_refuses_without_a_valid_credential(serve: ServeFactory, uid: str, query: str) -> None:
    async with serve(scoped_registry(uid)) as api, connect(f"{api.ws_url}/api/v1/live{query}") as ws:
        first = json.loads(await ws.recv())
        assert first["type"] == "error" and first["error"]["code"] == "unauthorized"
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 4401


async def test_enterprise_cannot_subscribe_to_other_parks(serve: ServeFactory, uid: str) -> None:
    async with serve(scoped_registry(uid)) as api, \
            connect(f"{api.ws_url}/api/v1/live?token={api.key('enterprise', f'a{uid}-e1')}") as ws:
        await ws.send(json.dumps({"subscribe": [f"b{uid}"]}))
        reply = json.loads(await ws.recv())
        assert reply["type"] == "error" and reply["error"]["code"] == "not_found"
        await ws.send(json.dumps({"subscribe": [f"a{uid}"]}))
        assert json.loads(await ws.recv()) == {"type": "subscribed", "parks": [f"a{uid}"]}
