"""Partitioning by park: a worker given `analytics.parks` takes only those parks' telemetry and publishes only
their KPIs, so workers of different parks share no state."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiomqtt
import orjson
import pytest

from analytics.service import AnalyticsService, own_parks
from deploy.services import RunningService
from parkmodel.codec import telemetry_payload
from parkmodel.registry import Registry, parse_registry
from parkmodel.topics import telemetry_topic
from smartpark.config import AnalyticsSettings, InfluxSettings, MqttSettings, Settings

pytestmark = pytest.mark.integration


def two_parks(uid: str) -> Registry:
    parks = []
    for p in ("a", "b"):
        parks.append({"id": f"{p}{uid}", "name": p, "enterprises": [{
            "id": f"{p}{uid}-e", "name": "e", "land_area_mu": 10,
            "gateways": [{"id": f"{p}{uid}-g", "devices": [
                {"id": f"{p}{uid}-m", "role": "grid_meter", "template": "acrel_dtsd1352"}]}]}]})
    return parse_registry({"version": 1, "parks": parks})


def test_unknown_park_is_a_config_error() -> None:
    with pytest.raises(ValueError, match=r"analytics\.parks: nope not in the registry"):
        own_parks(two_parks("x"), ["nope"])


async def test_a_worker_of_one_park_ignores_the_others(
        broker: RunningService, influx_url: str, influx_db: str, uid: str, tmp_path: Path) -> None:
    registry = two_parks(uid)
    settings = Settings(
        var_dir=tmp_path, mqtt=MqttSettings(host=broker.host, port=broker.port),
        influx=InfluxSettings(url=influx_url, database=influx_db),
        analytics=AnalyticsSettings(group=f"a{uid}", client_id=f"an-{uid}", publish_interval_s=0.5,
                                    parks=[f"a{uid}"]),
    )
    async with AnalyticsService(settings, registry, watch_registry=False) as svc, \
            aiomqtt.Client(broker.host, broker.port, identifier=f"t-{uid}") as client:
        await svc.wait_subscribed()
        await client.subscribe("sp/v1/+/kpi", qos=0)
        ts = time.time_ns() // 1_000_000
        for p, kw in (("a", 100.0), ("b", 200.0)):
            topic = telemetry_topic(f"{p}{uid}", f"{p}{uid}-e", f"{p}{uid}-m")
            await client.publish(topic, telemetry_payload(1, [(ts, {"active_power_kw": kw})]), qos=1)
        seen: dict[str, float] = {}
        # Several publish rounds (every 0.5 s): every KPI message that arrives is of park a.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3.0):
                async for message in client.messages:
                    body = orjson.loads(bytes(message.payload))  # type: ignore[arg-type]
                    seen[body["park"]] = body["kpi"]["grid_import_kw"]
    assert seen == {f"a{uid}": 100.0}
    assert f"b{uid}" not in svc.snapshot()
