"""/healthz and /metrics, and an API that starts while the broker and InfluxDB are down."""

from __future__ import annotations

from pathlib import Path

from deploy.services import RunningService, free_port
from tests.api.conftest import ServeFactory, api_settings, serve_api, wait_connected
from tests.conftest import make_registry


async def test_healthz_reports_both_services(serve: ServeFactory, uid: str) -> None:
    async with serve(make_registry(uid)) as api:
        await wait_connected(api)
        async with api.client() as client:
            r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["checks"]["influxdb"]["ok"] and r.json()["checks"]["mqtt"]["ok"]


async def test_api_serves_registry_while_broker_and_influx_are_down(uid: str, tmp_path: Path) -> None:
    dead = free_port()  # nothing listens here
    settings = api_settings("127.0.0.1", dead, f"http://127.0.0.1:{dead}", "smartpark", tmp_path)
    async with serve_api(settings, make_registry(uid)) as api, api.client() as client:
        assert (await client.get(f"/api/v1/parks/p{uid}")).status_code == 200
        health = await client.get("/healthz")
        assert health.status_code == 503
        checks = health.json()["checks"]
        assert not checks["mqtt"]["ok"] and not checks["influxdb"]["ok"]
        assert "unreachable" in checks["influxdb"]["detail"]

        r = await client.get(f"/api/v1/devices/m{uid}/latest")
        assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
        r = await client.get(f"/api/v1/parks/p{uid}/kpi")
        assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
        kpis = (await client.get("/api/v1/kpi")).json()  # degrades to "no data", still answers
        assert kpis == [{"scope": "park", "park": f"p{uid}", "enterprise": None, "ts": None, "source": None,
                         "kpi": None}]


async def test_metrics_count_requests_by_route_template(serve: ServeFactory, broker: RunningService,
                                                        uid: str) -> None:
    async with serve(make_registry(uid)) as api, api.client() as client:
        await wait_connected(api)
        for _ in range(3):
            await client.get(f"/api/v1/devices/m{uid}")
        await client.get(f"/api/v1/devices/zz{uid}")
        text = (await client.get("/metrics")).text
    assert 'smartpark_api_requests_total{method="GET",route="/api/v1/devices/{device_id}",status="200"} 3.0' in text
    assert 'smartpark_api_requests_total{method="GET",route="/api/v1/devices/{device_id}",status="404"} 1.0' in text
    assert "smartpark_api_request_seconds_bucket" in text
    assert "smartpark_api_websocket_clients 0.0" in text
    assert "smartpark_api_mqtt_connected 1.0" in text
    assert f"m{uid}" not in text  # raw paths never become labels
