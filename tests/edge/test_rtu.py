"""Modbus RTU on a serial line (a socat pty pair) and RTU framed over TCP (serial servers)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pymodbus.framer import FramerType

from edge_agent.agent import EdgeAgent
from edge_agent.config import DeviceConfig
from edge_agent.poller import DeviceCoordinator
from edge_agent.registermap import Function, load_template
from edge_agent.transport import make_link
from tests.edge.conftest import ReadingSink, gateway_config
from tests.edge.modbus_server import serial_server, tcp_server


def _gas(lel: float) -> dict[Function, dict[int, int]]:
    t = load_template("gas_detector")
    p = next(p for p in t.points if p.point == "lel_pct")
    return {Function.INPUT: dict(enumerate(p.encode(lel, t.byte_order, t.word_order)))}


async def test_rtu_bus_dead_slave_does_not_starve_the_others(pty_pair: tuple[str, str], uid: str,
                                                             tmp_path: Path) -> None:
    server_end, agent_end = pty_pair
    async with serial_server(server_end, [1, 2, 3], baudrate=19200) as served:
        served.registers[1] = _gas(12.5)
        served.registers[3] = _gas(33.0)
        served.silent.add(2)  # unit 2 is on the bus but never answers
        transport = {"kind": "rtu", "serial_port": agent_end, "baudrate": 19200, "bus": "rs485-1",
                     "inter_frame_delay_ms": 5}
        devices = [{"id": f"gas{n}{uid}", "template": "gas_detector", "interval_s": 0.2, "timeout_s": 0.15,
                    "transport": {**transport, "unit_id": n}} for n in (1, 2, 3)]
        cfg = gateway_config(uid, tmp_path, 1, devices)  # no broker needed: readings queue on disk
        async with EdgeAgent(cfg) as agent:
            await asyncio.sleep(2.0)
            health = {n: agent.coordinators[f"gas{n}{uid}"].health for n in (1, 2, 3)}
            assert agent.store is not None
            rows = agent.store.fetch(0, limit=10_000)
    assert len(agent.links) == 1  # one serial link shared by the three slaves
    assert health[1].online and health[3].online
    assert not health[2].online and "no answer" in health[2].error
    values = {r.device: r.body["lel_pct"] for r in rows}
    assert values == {f"gas1{uid}": 12.5, f"gas3{uid}": 33.0}
    # ~10 slots in 2 s: the answering slaves lose at most a couple to the dead one's short, backed-off timeouts
    assert health[1].polls_ok >= 7 and health[3].polls_ok >= 7
    assert health[2].polls_failed <= 6


async def test_rtu_over_tcp_serial_server() -> None:
    async with tcp_server([5], framer=FramerType.RTU) as (served, port):
        served.registers[5] = _gas(7.5)
        device = DeviceConfig.model_validate({
            "id": "gas-rtu-tcp", "template": "gas_detector", "timeout_s": 0.5,
            "transport": {"kind": "rtu_over_tcp", "host": "127.0.0.1", "port": port, "unit_id": 5}})
        link = make_link(device.transport, 0.5)
        sink = ReadingSink()
        try:
            reading = await DeviceCoordinator(device, load_template("gas_detector"), link, sink).poll_cycle()
        finally:
            link.close()
    assert reading is not None and reading.fields["lel_pct"] == 7.5
