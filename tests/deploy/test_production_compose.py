"""deploy/production/compose.yaml is structurally sound (docker is not available here, so no `compose config`).

Checks what `docker compose config` would, plus what SmartPark needs: images by name, references that resolve,
SMARTPARK_* variables that name real settings, one client id per worker in a shared group, partitioned analytics.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from smartpark.config import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "production" / "compose.yaml"
SERVICE_KEYS = {"image", "command", "restart", "depends_on", "environment", "ports", "volumes", "networks",
                "deploy", "hostname"}
IMAGE = re.compile(r"^(\$\{[A-Z_]+:-)?[a-z0-9./_-]+(:[A-Za-z0-9._-]+)\}?$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())  # resolves the anchors and `<<` merges as compose does
    assert isinstance(data, dict)
    return data


def services(compose: dict[str, Any], prefix: str) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if name.startswith(prefix)}


def test_top_level_and_service_keys_are_known(compose: dict[str, Any]) -> None:
    assert set(compose) - {"name", "services", "networks", "volumes"} == {k for k in compose if k.startswith("x-")}
    for name, service in compose["services"].items():
        assert set(service) <= SERVICE_KEYS, f"{name}: unknown keys {set(service) - SERVICE_KEYS}"
        assert "build" not in service
        assert IMAGE.match(service["image"]), f"{name}: image {service['image']!r} must be a name with a tag"


def test_every_reference_resolves(compose: dict[str, Any]) -> None:
    names = set(compose["services"])
    volumes, networks = set(compose.get("volumes", {})), set(compose.get("networks", {}))
    host_ports: list[str] = []
    for name, service in compose["services"].items():
        assert set(service.get("depends_on", [])) <= names - {name}, name
        assert set(service.get("networks", [])) <= networks, name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in volumes, f"{name}: named volume {source!r} is not declared"
        host_ports += [p.split(":")[0] for p in service.get("ports", [])]
        for value in (service.get("environment") or {}).values():
            assert isinstance(value, str), f"{name}: environment values must be strings (got {value!r})"
    assert len(host_ports) == len(set(host_ports)), "a host port is published twice"


def _setting_exists(variable: str) -> bool:
    path = variable.removeprefix("SMARTPARK_").lower().split("__")
    model: type[BaseModel] = Settings
    for i, part in enumerate(path):
        field = model.model_fields.get(part)
        if field is None:
            return False
        if i < len(path) - 1:
            annotation = field.annotation
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def test_smartpark_variables_name_real_settings(compose: dict[str, Any]) -> None:
    seen = set()
    for service in compose["services"].values():
        for variable in service.get("environment") or {}:
            if variable.startswith("SMARTPARK_"):
                seen.add(variable)
                assert _setting_exists(variable), f"{variable} is not a field of smartpark.config.Settings"
    assert "SMARTPARK_INGEST__CLIENT_ID" in seen and "SMARTPARK_INFLUX__URL" in seen


def test_ingest_workers_share_a_group_with_their_own_client_ids(compose: dict[str, Any]) -> None:
    workers = services(compose, "ingest-")
    assert len(workers) >= 2
    envs = [w["environment"] for w in workers.values()]
    assert len({e["SMARTPARK_INGEST__GROUP"] for e in envs}) == 1
    assert len({e["SMARTPARK_INGEST__CLIENT_ID"] for e in envs}) == len(envs)
    assert all(w["command"][:3] == ["python", "-m", "ingest"] for w in workers.values())


def test_analytics_is_partitioned_by_park_not_by_message(compose: dict[str, Any]) -> None:
    workers = services(compose, "analytics-")
    assert len(workers) >= 2
    envs = [w["environment"] for w in workers.values()]
    # Distinct groups and registries: each park's whole stream reaches exactly one analytics worker.
    assert len({e["SMARTPARK_ANALYTICS__GROUP"] for e in envs}) == len(envs)
    assert len({e["SMARTPARK_REGISTRY"] for e in envs}) == len(envs)
    assert len({e["SMARTPARK_ANALYTICS__CLIENT_ID"] for e in envs}) == len(envs)


def test_the_platform_pieces_are_all_there(compose: dict[str, Any]) -> None:
    images = {name: s["image"] for name, s in compose["services"].items()}
    assert any(i.startswith(("emqx/emqx", "eclipse-mosquitto")) for i in images.values())
    assert any(i.startswith("influxdb:") and i.split(":")[1][0] in "23" for i in images.values())
    assert any(i.startswith("grafana/") for i in images.values())
    assert "api" in images
    emqx = [s for s in compose["services"].values() if s["image"].startswith("emqx/")]
    assert len(emqx) >= 2, "an EMQX cluster, not a single broker"
    assert all(s["environment"]["EMQX_BROKER__SHARED_SUBSCRIPTION_STRATEGY"] == "hash_topic" for s in emqx)


def test_every_variable_the_file_needs_is_in_the_env_example(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    needed = set(re.findall(r"\$\{([A-Z_]+)[:?}-]", text))
    example = COMPOSE.with_name(".env.example").read_text()
    defined = set(re.findall(r"^([A-Z_]+)=", example, flags=re.MULTILINE))
    assert needed <= defined, f"missing from .env.example: {needed - defined}"
