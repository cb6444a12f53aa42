"""The HTTP control channel, and the CLI against a simulator running as its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from pymodbus.client import AsyncModbusTcpClient, ModbusTcpClient
from typer.testing import CliRunner

from deploy.services import free_port, port_answers
from edge_agent.registermap import decode_block, load_template
from simulators import SimulatedPark
from simulators.cli import app
from tests.simulators.helpers import NOON, balance_registry, read_points

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def park(uid: str) -> AsyncIterator[SimulatedPark]:
    async with SimulatedPark(balance_registry(uid), speed=60, start=NOON, control_port=0, tick_s=0.1) as p:
        yield p


async def test_control_set_fault_and_state(park: SimulatedPark, uid: str) -> None:
    assert park.control is not None
    async with httpx.AsyncClient(base_url=park.control.url) as http:
        r = await http.post("/set", json={"device": f"grid{uid}", "point": "active_power_kw", "value": -42.125})
        assert r.status_code == 200, r.text
        r = await http.post("/fault", json={"device": f"fire{uid}", "fault": "fire"})
        assert r.status_code == 200, r.text
        state = (await http.get("/state")).json()
        layout = (await http.get("/layout")).json()
    assert state["devices"][f"grid{uid}"]["pinned"] == {"active_power_kw": -42.125}
    assert state["devices"][f"fire{uid}"]["faults"] == ["fire"]
    assert state["sim_time"].startswith("2024-06-21T12:4")
    assert layout["devices"][f"fire{uid}"]["unit_id"] == 10
    host, port, unit = park.address_of(f"grid{uid}")
    async with AsyncModbusTcpClient(host, port=port, timeout=1, retries=0) as client:
        assert (await read_points(client, "acrel_dtsd1352", unit))["active_power_kw"] == pytest.approx(-42.125)
        _, _, fire_unit = park.address_of(f"fire{uid}")
        assert (await read_points(client, "fire_panel", fire_unit))["smoke_alarm"] == 1


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), [
    ("POST", "/fault", {"device": "nope", "fault": "timeout"}, 404, "unknown device 'nope'"),
    ("POST", "/fault", {"device": "grid{uid}", "fault": "explode"}, 400, "known faults: timeout, exception"),
    ("POST", "/fault", {"device": "grid{uid}", "fault": "gas_leak"}, 400, "does not apply"),
    ("POST", "/fault", {"device": "grid{uid}"}, 400, "missing key 'fault'"),
    ("POST", "/set", {"device": "grid{uid}", "point": "lel_pct", "value": 1}, 400, "has no point 'lel_pct'"),
    ("POST", "/set", {"device": "grid{uid}", "point": "voltage_v", "value": "230"}, 400, "expected a number"),
    ("POST", "/set", {"device": "grid{uid}", "point": "voltage_v", "value": float("nan")}, 400, "finite"),
    ("POST", "/set", "not json", 400, "not valid JSON"),
    ("POST", "/set", [1, 2], 400, "must be a JSON object"),
    ("GET", "/set", None, 405, "accepts POST"),
    ("GET", "/nowhere", None, 404, "routes: GET /state"),
])
async def test_control_rejects_bad_input_clearly(
    park: SimulatedPark, uid: str, method: str, path: str, body: object, status: int, message: str
) -> None:
    assert park.control is not None
    if isinstance(body, dict):
        content = json.dumps({k: v.format(uid=uid) if isinstance(v, str) else v for k, v in body.items()})
    else:
        content = body if isinstance(body, str) else json.dumps(body) if body is not None else ""
    async with httpx.AsyncClient(base_url=park.control.url) as http:
        r = await http.request(method, path, content=content.encode())
    assert r.status_code == status
    assert message in r.json()["error"]


@pytest.fixture
def running_cli_park(tmp_path: Path, uid: str) -> Iterator[tuple[str, Path, str]]:
    """`simulate park` as its own process, as an operator would run it."""
    registry_path = tmp_path / "registry.yaml"
    registry_path.write_text(yaml.safe_dump(balance_registry(uid).model_dump(mode="json"), allow_unicode=True))
    layout_path = tmp_path / "layout.yaml"
    control_port, base_port = free_port(), free_port()
    code = "from simulators.cli import app; app()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "park", "--registry", str(registry_path), "--base-port", str(base_port),
         "--control-port", str(control_port), "--speed", "60", "--layout-out", str(layout_path)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while not port_answers("127.0.0.1", control_port, 0.2):
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "simulator did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{control_port}", layout_path, uid
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


def test_cli_drives_a_running_simulator(running_cli_park: tuple[str, Path, str]) -> None:
    url, layout_path, uid = running_cli_park
    runner = CliRunner()
    result = runner.invoke(app, ["set", f"office{uid}", "active_power_kw", "77.25", "--control", url])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["fault", f"pv{uid}", "timeout", "--control", url])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["state", "--control", url])
    assert result.exit_code == 0, result.output
    state = json.loads(result.output)
    assert state["devices"][f"pv{uid}"]["faults"] == ["timeout"]

    bad = runner.invoke(app, ["fault", f"pv{uid}", "melt", "--control", url])
    assert bad.exit_code == 1 and "unknown fault 'melt'" in bad.output
    bad = runner.invoke(app, ["set", "ghost", "voltage_v", "1", "--control", url])
    assert bad.exit_code == 1 and "unknown device 'ghost'" in bad.output

    layout = yaml.safe_load(layout_path.read_text())["devices"][f"office{uid}"]
    template = load_template("eastron_sdm630")
    block = next(b for b in template.blocks() if any(p.point == "active_power_kw" for p in b.points))
    with ModbusTcpClient(layout["host"], port=layout["port"], timeout=1, retries=0) as client:
        response = client.read_input_registers(block.address, count=block.count, device_id=layout["unit_id"])
    assert decode_block(block, response.registers, template)["active_power_kw"] == 77.25


def test_cli_park_rejects_unknown_park(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["park", "--park", "atlantis", "--control-port", "0"])
    assert result.exit_code == 2
    assert "unknown park 'atlantis'" in result.output
