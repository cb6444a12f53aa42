"""A device added to the registry file (as the API's registry editing does) is accepted by a running ingest
without a restart; until then it is dead-lettered as unknown."""

from __future__ import annotations

from pathlib import Path

import yaml

from deploy.services import RunningService
from ingest import IngestService
from tests.conftest import make_registry
from tests.ingest.helpers import (
    TEST_SESSION_EXPIRY_S,
    DeadLetters,
    count_points,
    eventually,
    make_settings,
    mqtt_client,
    now_ms,
    publish_telemetry,
)


def _write_atomically(path: Path, data: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(data, allow_unicode=True))
    tmp.replace(path)


async def test_a_device_added_to_the_registry_file_is_accepted_without_restart(
        broker: RunningService, influx_url: str, influx_db: str, uid: str, tmp_path: Path) -> None:
    registry = make_registry(uid)
    path = tmp_path / "registry.yaml"
    _write_atomically(path, registry.model_dump(mode="json"))
    settings = make_settings(broker, influx_url, influx_db, uid).model_copy(update={"registry": path})
    park, ent, new = f"p{uid}", f"e{uid}-0", f"new{uid}"
    topic = f"sp/v1/{park}/{ent}/{new}/telemetry"
    async with IngestService(settings, registry, session_expiry_s=TEST_SESSION_EXPIRY_S) as svc, \
            mqtt_client(broker) as pub, mqtt_client(broker) as watcher, DeadLetters(watcher, uid) as dead:
        await svc.wait_subscribed()
        await publish_telemetry(pub, topic, 1, [(now_ms(), {"active_power_kw": 1.5})])

        async def rejected() -> bool:
            return dead.reasons().get(topic) == "unknown_device"
        await eventually(rejected, what="the unknown device dead-lettered")

        data = registry.model_dump(mode="json")
        data["parks"][0]["enterprises"][0]["gateways"][0]["devices"].append(
            {"id": new, "role": "load_meter", "template": "eastron_sdm630", "parent": f"m{uid}"})
        _write_atomically(path, data)

        async def stored() -> bool:
            await publish_telemetry(pub, topic, 2, [(now_ms(), {"active_power_kw": 2.5})])
            return await count_points(influx_url, influx_db) >= 1
        await eventually(stored, within=15, what="the new device's reading in InfluxDB")
