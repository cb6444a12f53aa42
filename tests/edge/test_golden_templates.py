"""Golden cases (Telegraf style): every shipped template's register dump, served by a real pymodbus server,
decodes through the real polling path to exactly the expected reading."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.config import DeviceConfig
from edge_agent.poller import DeviceCoordinator
from edge_agent.registermap import TEMPLATE_DIR, Function, load_template, template_names
from edge_agent.transport import make_link
from tests.edge.conftest import ReadingSink
from tests.edge.modbus_server import ServedRegisters, tcp_server

CASES_DIR = TEMPLATE_DIR / "testcases"


def _load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path}: expected a mapping"
    return data


def test_every_template_has_a_golden_case() -> None:
    assert sorted(p.name for p in CASES_DIR.iterdir() if p.is_dir()) == template_names()


@pytest.mark.parametrize("template", template_names())
async def test_golden_case(template: str) -> None:
    dump = _load(CASES_DIR / template / "registers.yaml")
    expected = _load(CASES_DIR / template / "expected.yaml")
    served = ServedRegisters()
    for function, table in dump.items():
        served.registers.setdefault(7, {})[Function(function)] = {int(a): int(v) for a, v in table.items()}
    async with tcp_server([7], served) as (_, port):
        device = DeviceConfig.model_validate({
            "id": "golden", "template": template, "timeout_s": 1,
            "transport": {"kind": "tcp", "host": "127.0.0.1", "port": port, "unit_id": 7},
        })
        link = make_link(device.transport, device.timeout_s)
        sink = ReadingSink()
        try:
            reading = await DeviceCoordinator(device, load_template(template), link, sink).poll_cycle()
        finally:
            link.close()
    assert reading is not None and sink.readings == [reading]
    assert set(reading.fields) == set(expected), f"published points differ; flagged: {reading.flagged}"
    for point, value in expected.items():
        assert math.isclose(reading.fields[point], value, rel_tol=1e-6, abs_tol=1e-9), (point, reading.fields[point])
    declared = {p.point for p in load_template(template).points}
    assert set(reading.flagged) == declared - set(expected)
    # One request per merged block, no more.
    assert served.reads == len(load_template(template).blocks())
