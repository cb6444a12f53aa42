"""Gateway config validation and the `smartpark edge` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from edge_agent.cli import app
from edge_agent.config import ConfigError, load_gateway_config
from tests.edge.modbus_server import tcp_server


def _valid() -> dict[str, Any]:
    return {
        "park": "otog", "enterprise": "ot-coalchem", "gateway": "ot-coalchem-gw1",
        "mqtt": {"host": "127.0.0.1", "port": 1883, "client_id": "edge-gw1"},
        "store": {"path": "var/edge/gw1.sqlite"},
        "devices": [
            {"id": "ot-coalchem-grid", "template": "acrel_dtsd1352", "interval_s": 5, "timeout_s": 1,
             "transport": {"kind": "tcp", "host": "10.0.0.5", "port": 502, "unit_id": 1}},
            {"id": "ot-coalchem-gas", "template": "gas_detector",
             "transport": {"kind": "rtu", "serial_port": "/dev/ttyUSB0", "unit_id": 3, "bus": "rs485-1",
                           "baudrate": 9600, "parity": "E", "stopbits": 1, "inter_frame_delay_ms": 10}},
        ],
    }


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_valid_config_loads(tmp_path: Path) -> None:
    cfg = load_gateway_config(_write(tmp_path, _valid()))
    assert cfg.devices[1].transport.bus_name == "rs485-1"
    assert cfg.mqtt.protocol == "5"


@pytest.mark.parametrize(("mutate", "key", "expected"), [
    (lambda d: d["devices"][0].update(template="nope"), "devices.0.template", "shipped templates: acrel_dtsd1352"),
    (lambda d: d.update(park="Bad Park"), "park", "invalid park id"),
    (lambda d: d["devices"][1].update(id="ot-coalchem-grid"), "devices.1.id", "appears twice"),
    (lambda d: d["devices"][0]["transport"].pop("host"), "devices.0.transport", "needs 'host'"),
    (lambda d: d["devices"][0].update(interval_s="often"), "devices.0.interval_s", "valid number"),
    (lambda d: d["mqtt"].update(client_id="a b"), "mqtt.client_id", "should match pattern"),
    (lambda d: d["devices"][0].update(colour="red"), "devices.0.colour", "Extra inputs"),
])
def test_bad_config_names_file_key_and_expectation(tmp_path: Path, mutate: Any, key: str, expected: str) -> None:
    data = _valid()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_gateway_config(path)
    message = str(err.value)
    assert str(path) in message and key in message and expected in message, message


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="gateway config file not found"):
        load_gateway_config(tmp_path / "absent.yaml")


def test_cli_templates_lists_shipped_ones() -> None:
    result = CliRunner().invoke(app, ["templates"])
    assert result.exit_code == 0
    assert "huawei_sun2000" in result.output and "water_meter_badc" in result.output


def test_cli_rejects_bad_config(tmp_path: Path) -> None:
    data = _valid()
    data["devices"][0]["template"] = "nope"
    result = CliRunner().invoke(app, ["--config", str(_write(tmp_path, data))])
    assert result.exit_code == 2 and "devices.0.template" in result.output


async def test_cli_probe_prints_the_interpretations(tmp_path: Path) -> None:
    from edge_agent.probe import interpretation_table, read_raw
    from edge_agent.registermap import Function

    async with tcp_server([1]) as (served, port):
        served.set(1, Function.INPUT, 10, [0x42F6, 0xE979])
        registers = await read_raw("127.0.0.1", 10, 2, port=port, function="input")
    assert registers == [0x42F6, 0xE979]
    table = interpretation_table(registers, 10)
    assert "123.456" in table and "0x42F6" in table
