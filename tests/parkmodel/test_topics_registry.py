from pathlib import Path

import pytest

from parkmodel.ids import InvalidIdError, validate_id
from parkmodel.registry import RegistryError, Role, load_registry, parse_registry
from parkmodel.topics import DeviceTopic, DeviceTopicKind, TopicError, kpi_topic, shared, telemetry_topic


def test_topic_round_trip() -> None:
    t = telemetry_topic("mengsu", "zc-battery", "zc-battery-grid")
    assert t == "sp/v1/mengsu/zc-battery/zc-battery-grid/telemetry"
    parsed = DeviceTopic.parse(t)
    assert (parsed.park, parsed.enterprise, parsed.device, parsed.kind) == (
        "mengsu", "zc-battery", "zc-battery-grid", DeviceTopicKind.TELEMETRY)
    assert kpi_topic("otog") == "sp/v1/otog/kpi"
    assert shared("ingest", "sp/v1/+/+/+/telemetry") == "$share/ingest/sp/v1/+/+/+/telemetry"


@pytest.mark.parametrize("topic", [
    "sp/v1/p/e/d", "sp/v2/p/e/d/telemetry", "sp/v1/P/e/d/telemetry", "sp/v1/p/e/d/other",
    "sp/v1/p/e/d/telemetry/x", "sp/v1/p//d/telemetry", "sp/v1/_x/e/d/telemetry",
])
def test_bad_topics(topic: str) -> None:
    with pytest.raises(TopicError):
        DeviceTopic.parse(topic)


@pytest.mark.parametrize("bad", ["", "A", "-x", "a" * 65, "a b", "a/b", "a+", "ä"])
def test_bad_ids(bad: str) -> None:
    with pytest.raises(InvalidIdError):
        validate_id(bad)


def test_shipped_registry_covers_the_seed_and_the_demo() -> None:
    reg = load_registry()
    assert {p.name for p in reg.parks} >= {"鄂托克经济开发区", "准格尔经济开发区", "苏里格经济开发区", "蒙苏经济开发区",
                                         "鄂尔多斯高新技术产业开发区", "达拉特经济开发区", "杭锦经济开发区", "上海庙经济开发区"}
    populated = [p for p in reg.parks if p.enterprises]
    devices = list(reg.devices())
    assert len(populated) >= 3
    assert sum(len(p.enterprises) for p in reg.parks) >= 12
    assert len(devices) >= 150
    assert {d.device.role for d in devices} == set(Role)
    mengsu = reg.park("mengsu")
    assert mengsu is not None
    assert {(t.year, t.ratio) for t in mengsu.new_energy_targets} == {(2023, 0.5), (2025, 0.8)}
    assert {(t.year, t.output_value_yi_yuan) for t in mengsu.output_targets} == {(2022, 200), (2025, 1000)}
    otog = reg.park("otog")
    assert otog is not None and [(t.year, t.ratio) for t in otog.new_energy_targets] == [(2025, 0.5)]
    assert all(1 <= d.device.poll_interval_s <= 5 for d in devices)


def test_lookups() -> None:
    reg = load_registry()
    ref = reg.device("zc-battery-grid")
    assert ref is not None and ref.enterprise.id == "zc-battery" and ref.park.id == "mengsu"
    assert reg.device_at("mengsu", "zc-battery", "zc-battery-grid") is ref
    assert reg.device_at("mengsu", "zc-pvglass", "zc-battery-grid") is None
    assert reg.device("nope") is None


def _reg(devices: list[dict[str, object]]) -> dict[str, object]:
    return {"version": 1, "parks": [{"id": "p", "name": "P", "enterprises": [
        {"id": "e", "name": "E", "land_area_mu": 10, "gateways": [{"id": "g", "devices": devices}]}]}]}


def test_registry_errors_name_the_key() -> None:
    with pytest.raises(RegistryError, match=r"parks\.0\.enterprises\.0\.gateways\.0\.devices\.0\.role"):
        parse_registry(_reg([{"id": "d", "role": "toaster", "template": "x"}]), "r.yaml")
    with pytest.raises(RegistryError, match="device id 'd' is used twice"):
        parse_registry(_reg([{"id": "d", "role": "pv", "template": "x"}, {"id": "d", "role": "pv", "template": "x"}]))
    with pytest.raises(RegistryError, match="parent 'zz'"):
        parse_registry(_reg([{"id": "d", "role": "load_meter", "template": "x", "parent": "zz"}]))


def test_registry_file_errors(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="not found"):
        load_registry(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("parks: [")
    with pytest.raises(RegistryError, match=f"{bad}: not valid YAML"):
        load_registry(bad)
