"""The agent against real pymodbus TCP servers and the real Mosquitto."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt

from deploy.services import RunningService
from edge_agent.agent import EdgeAgent
from edge_agent.registermap import Function, load_template
from parkmodel.codec import decode_status, decode_telemetry
from tests.edge.conftest import gateway_config, tcp_device
from tests.edge.modbus_server import tcp_server


def _encode(template: str, values: dict[str, float]) -> dict[Function, dict[int, int]]:
    t = load_template(template)
    out: dict[Function, dict[int, int]] = {}
    for p in t.points:
        if p.point in values:
            for i, r in enumerate(p.encode(values[p.point], t.byte_order, t.word_order)):
                out.setdefault(p.function, {})[p.address + i] = r
    return out


async def test_values_arrive_decoded_and_seq_increments(broker: RunningService, uid: str, tmp_path: Path) -> None:
    async with tcp_server([1]) as (served, port):
        served.registers[1] = _encode("acrel_dtsd1352", {"voltage_v": 231.4, "active_power_kw": -12.345,
                                                         "energy_import_kwh": 123456.78})
        cfg = gateway_config(uid, tmp_path, broker.port, [tcp_device(f"m{uid}", "acrel_dtsd1352", port)])
        topic = f"sp/v1/p{uid}/e{uid}/m{uid}/telemetry"
        async with aiomqtt.Client(broker.host, broker.port) as sub:
            await sub.subscribe(topic, qos=1)
            async with EdgeAgent(cfg):
                got = []
                async with asyncio.timeout(5):
                    async for msg in sub.messages:
                        got.append(decode_telemetry(msg.payload))
                        if len(got) == 3:
                            break
    fields = got[0].points[0].fields
    assert fields["voltage_v"] == 231.4
    assert abs(fields["active_power_kw"] - -12.345) < 1e-9
    assert abs(fields["energy_import_kwh"] - 123456.78) < 1e-6
    seqs = [t.seq for t in got]
    assert seqs == list(range(seqs[0], seqs[0] + 3))


async def _collect_until(sub: aiomqtt.Client, done: Callable[[list[aiomqtt.Message]], bool],
                         within_s: float = 5.0) -> list[aiomqtt.Message]:
    got: list[aiomqtt.Message] = []
    async with asyncio.timeout(within_s):
        async for msg in sub.messages:
            got.append(msg)
            if done(got):
                return got
    return got


async def test_device_that_stops_answering_is_offline_and_not_republished(
        broker: RunningService, uid: str, tmp_path: Path) -> None:
    gone, kept = f"gone{uid}", f"kept{uid}"
    base = f"sp/v1/p{uid}/e{uid}"
    gone_server = tcp_server([1])
    async with tcp_server([1]) as (other, other_port), aiomqtt.Client(broker.host, broker.port) as sub:
        other.registers[1] = _encode("gas_detector", {"lel_pct": 1.5})
        await sub.subscribe(f"{base}/+/telemetry", qos=1)
        await sub.subscribe(f"{base}/g{uid}/status", qos=1)
        served, port = await gone_server.__aenter__()
        served.registers[1] = _encode("steam_flowmeter", {"steam_t": 10.5, "temperature_c": 180})
        cfg = gateway_config(uid, tmp_path, broker.port, [
            tcp_device(gone, "steam_flowmeter", port), tcp_device(kept, "gas_detector", other_port)])
        async with EdgeAgent(cfg) as agent:
            await _collect_until(sub, lambda got: str(got[-1].topic).endswith(f"{gone}/telemetry"))
            await gone_server.__aexit__(None, None, None)  # the steam meter stops answering
            stopped_at = time.time_ns() // 1_000_000

            def offline_and_others_flow(got: list[aiomqtt.Message]) -> bool:
                statuses = [decode_status(m.payload) for m in got if str(m.topic).endswith("/status")]
                kept_msgs = [m for m in got if str(m.topic).endswith(f"{kept}/telemetry")]
                return bool(statuses) and not statuses[-1].devices[gone].online and len(kept_msgs) >= 3

            got = await _collect_until(sub, offline_and_others_flow)
            await asyncio.sleep(0.6)  # several more (backed-off) cycles of the dead device
            while len(sub.messages):
                got.append(await anext(aiter(sub.messages)))
            health = agent.coordinators[gone].health
    status = [decode_status(m.payload) for m in got if str(m.topic).endswith("/status")][-1]
    assert status.state == "online"
    assert status.devices[gone].online is False and status.devices[gone].error
    assert status.devices[gone].last_ok_ts is not None and status.devices[gone].last_ok_ts <= stopped_at
    assert status.devices[kept].online is True
    gone_points = [p for m in got if str(m.topic).endswith(f"{gone}/telemetry")
                   for p in decode_telemetry(m.payload).points]
    assert all(p.ts <= stopped_at for p in gone_points), "a value of the dead device was republished"
    assert sum(str(m.topic).endswith(f"{kept}/telemetry") for m in got) >= 3
    assert health.polls_failed >= 1 and not health.online
    # after a clean stop the retained status a newcomer sees says offline
    async with aiomqtt.Client(broker.host, broker.port) as late:
        await late.subscribe(f"{base}/g{uid}/status", qos=1)
        async with asyncio.timeout(3):
            msg = await anext(aiter(late.messages))
    assert msg.retain and decode_status(msg.payload).state == "offline"
