"""Fixtures of the fault scenarios: an influxd of their own (the InfluxDB scenario stops and restarts it, which
must not disturb the session's shared one) and a secured broker per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.services import RunningService, influxd
from tests.faults.scenarios import FaultBed, fault_bed


@pytest.fixture(scope="session")
def fault_influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with influxd(tmp_path_factory.mktemp("fault-influxd")) as service:
        yield service


@pytest.fixture
def bed(tmp_path: Path, fault_influx: RunningService, uid: str) -> Iterator[FaultBed]:
    """Broker with authentication and ACL (fresh accounts), the faults' influxd, a two-enterprise park."""
    with fault_bed(tmp_path / "bed", fault_influx, uid) as b:
        yield b
