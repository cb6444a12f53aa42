"""KPI messages over the real broker: the live WebSocket, the KPI routes, and their InfluxDB fallback."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiomqtt
import orjson
from websockets.asyncio.client import ClientConnection, connect

from deploy.services import RunningService
from parkmodel.registry import parse_registry
from parkmodel.topics import kpi_topic
from tests.api.conftest import ServeFactory, wait_connected
from tests.api.test_telemetry_routes import write_lines


def kpi_message(park: str, enterprise: str, load_kw: float) -> dict[str, Any]:
    kpi = {"load_kw": load_kw, "generation_kw": 40.0, "grid_import_kw": load_kw - 40.0, "grid_export_kw": 0.0,
           "new_energy_ratio_today": 0.42, "consumed_today_kwh": 900.0}
    return {"v": 1, "ts": int(time.time() * 1000), "park": park, "kpi": kpi,
            "enterprises": {enterprise: {**kpi, "load_kw": load_kw / 2}}}


def two_park_registry(uid: str) -> Any:
    parks = [{"id": f"{n}{uid}", "name": f"园区{n}", "enterprises": [
        {"id": f"{n}{uid}-e", "name": "企业", "land_area_mu": 10, "gateways": []}]} for n in ("a", "b")]
    return parse_registry({"version": 1, "parks": parks})


async def publish(broker: RunningService, message: dict[str, Any], park: str | None = None) -> None:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.publish(kpi_topic(park or message["park"]), orjson.dumps(message), qos=1)


async def next_kpi(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "kpi":
                return frame


async def test_websocket_streams_kpi_from_mqtt_with_park_filter(serve: ServeFactory, broker: RunningService,
                                                                uid: str) -> None:
    a, b = f"a{uid}", f"b{uid}"
    async with serve(two_park_registry(uid)) as api:
        await wait_connected(api)
        async with connect(api.ws_url + "/api/v1/live", additional_headers=api.headers()) as ws:
            sent = kpi_message(a, f"{a}-e", 120.0)
            await publish(broker, sent)
            frame = await next_kpi(ws)
            assert frame == {"type": "kpi", "park": a, "data": sent}

            await ws.send(json.dumps({"subscribe": [b]}))
            assert json.loads(await ws.recv()) == {"type": "subscribed", "parks": [b]}
            await publish(broker, kpi_message(a, f"{a}-e", 130.0))  # filtered out
            await publish(broker, kpi_message(b, f"{b}-e", 70.0))
            frame = await next_kpi(ws)
            assert frame["park"] == b and frame["data"]["kpi"]["load_kw"] == 70.0

            await ws.send(json.dumps({"unsubscribe": [b]}))
            assert json.loads(await ws.recv()) == {"type": "subscribed", "parks": []}
            await ws.send(json.dumps({"subscribe": [f"zz{uid}"]}))
            error = json.loads(await ws.recv())
            assert error["type"] == "error" and error["error"]["code"] == "not_found"
            await ws.send("not json")
            assert json.loads(await ws.recv())["error"]["code"] == "invalid_request"

        # A new client first gets what is already known, then live frames.
        async with connect(api.ws_url + "/api/v1/live", additional_headers=api.headers()) as ws:
            first = [await next_kpi(ws), await next_kpi(ws)]
            assert {f["park"]: f["data"]["kpi"]["load_kw"] for f in first} == {a: 130.0, b: 70.0}

        # Malformed KPI messages and other parks are dropped and counted, not cached.
        await publish(broker, {"v": 1, "park": a, "kpi": "garbage"}, park=a)
        await publish(broker, kpi_message(f"x{uid}", "e", 1.0))
        async with api.client() as client:
            await asyncio.sleep(0.3)
            park_kpi = (await client.get(f"/api/v1/parks/{a}/kpi")).json()
            assert park_kpi["source"] == "live" and park_kpi["kpi"]["load_kw"] == 130.0
            ent_kpi = (await client.get(f"/api/v1/enterprises/{b}-e/kpi")).json()
            assert ent_kpi["source"] == "live" and ent_kpi["kpi"]["load_kw"] == 35.0
            all_kpi = (await client.get("/api/v1/kpi")).json()
            assert [(k["park"], k["source"]) for k in all_kpi] == [(a, "live"), (b, "live")]
            metrics = (await client.get("/metrics")).text
            assert 'smartpark_api_kpi_messages_total{result="ok"} 3.0' in metrics
            assert 'smartpark_api_kpi_messages_total{result="invalid"} 2.0' in metrics


async def test_kpi_falls_back_to_influxdb(serve: ServeFactory, influx_url: str, influx_db: str, uid: str) -> None:
    a, b = f"a{uid}", f"b{uid}"
    now = int(time.time() * 1000)
    write_lines(influx_url, influx_db, [
        f"kpi,scope=park,park={a} load_kw=10,generation_kw=2 {now - 5000}",
        f"kpi,scope=park,park={a} load_kw=11,generation_kw=3 {now - 3000}",
        f"kpi,scope=enterprise,park={a},enterprise={a}-e load_kw=5,new_energy_ratio_today=0.5 {now - 3000}",
    ])
    async with serve(two_park_registry(uid)) as api, api.client() as client:
        park_kpi = (await client.get(f"/api/v1/parks/{a}/kpi")).json()
        assert park_kpi == {"scope": "park", "park": a, "enterprise": None, "ts": now - 3000, "source": "influxdb",
                            "kpi": {"load_kw": 11.0, "generation_kw": 3.0, "new_energy_ratio_today": None}}
        ent_kpi = (await client.get(f"/api/v1/enterprises/{a}-e/kpi")).json()
        assert ent_kpi["source"] == "influxdb" and ent_kpi["kpi"]["new_energy_ratio_today"] == 0.5
        assert (await client.get(f"/api/v1/parks/{b}/kpi")).json()["kpi"] is None
        all_kpi = (await client.get("/api/v1/kpi")).json()
        assert [(k["park"], k["source"], k["ts"]) for k in all_kpi] == [(a, "influxdb", now - 3000), (b, None, None)]
