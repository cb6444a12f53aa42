"""Helpers of the edge agent tests: gateway configs pointing at real servers of the test."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import GatewayConfig, parse_gateway_config
from edge_agent.poller import DeviceHealth, Reading


def gateway_config(uid: str, tmp_path: Path, broker_port: int, devices: list[dict[str, Any]],
                   **store: Any) -> GatewayConfig:
    """A config with ids carrying `uid`, MQTT on the test broker, the store under `tmp_path`."""
    return parse_gateway_config({
        "park": f"p{uid}", "enterprise": f"e{uid}", "gateway": f"g{uid}",
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "client_id": f"edge-{uid}",
                 "reconnect_min_s": 0.1, "reconnect_max_s": 0.5},
        "store": {"path": str(tmp_path / "queue.sqlite"), **store},
        "devices": devices,
    }, "test config")


def tcp_device(device_id: str, template: str, port: int, unit: int = 1, **extra: Any) -> dict[str, Any]:
    return {"id": device_id, "template": template, "interval_s": 0.2, "timeout_s": 0.3,
            "transport": {"kind": "tcp", "host": "127.0.0.1", "port": port, "unit_id": unit}, **extra}


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals (a null-modem cable) made by socat; stopped afterwards."""
    a, b = tmp_path / "ttyA", tmp_path / "ttyB"
    proc = subprocess.Popen(["socat", "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not (a.exists() and b.exists()):
            assert time.monotonic() < deadline, "socat did not create the pty pair"
            time.sleep(0.02)
        yield str(a), str(b)
    finally:
        proc.terminate()
        proc.wait(5)


class ReadingSink:
    """A poller's sink that keeps the readings (health reports are ignored)."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []

    def on_reading(self, reading: Reading) -> None:
        self.readings.append(reading)

    def on_health(self, device: str, health: DeviceHealth) -> None:
        pass
