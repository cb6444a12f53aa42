"""A broker that acknowledges a publish without delivering it (PUBACK 0x10, no matching subscribers) must not
cost the readings: they stay in the store until a subscriber is there to receive them."""

from __future__ import annotations

import asyncio

import aiomqtt

from deploy.services import RunningService
from edge_agent.agent import EdgeAgent
from edge_agent.registermap import Function, load_template
from parkmodel.codec import decode_telemetry
from tests.edge.conftest import gateway_config, tcp_device
from tests.edge.modbus_server import tcp_server


async def test_readings_published_to_nobody_stay_queued_until_someone_subscribes(
        broker: RunningService, uid: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    topic = f"sp/v1/p{uid}/e{uid}/w{uid}/telemetry"
    template = load_template("water_meter_badc")
    async with tcp_server([1]) as (served, modbus_port):
        cfg = gateway_config(uid, tmp_path, broker.port, [tcp_device(f"w{uid}", "water_meter_badc", modbus_port,
                                                                     interval_s=0.05)])
        async with EdgeAgent(cfg) as agent:
            assert agent.store is not None
            health = agent.coordinators[f"w{uid}"].health
            for n in range(1, 11):  # ten distinct readings while nobody listens
                served.set(1, Function.HOLDING, 0, template.points[0].encode(n, template.byte_order,
                                                                             template.word_order))
                # Two polls ended since the change: at least one read it, however late a busy machine ran it.
                seen = health.polls_ok
                for _ in range(500):
                    if health.polls_ok >= seen + 2:
                        break
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.5)
            assert agent.publisher.connected.is_set() or agent.store.depth > 0
            queued = {item.body["water_m3"] for item in agent.store.fetch(0, None, 10_000)}
            assert set(range(1, 11)) <= queued, "readings acknowledged with 0x10 were deleted from the store"

            async with aiomqtt.Client(broker.host, broker.port, identifier=f"sub-{uid}") as sub:
                await sub.subscribe(topic, qos=1)
                seen: set[float] = set()
                async with asyncio.timeout(15):
                    async for msg in sub.messages:
                        seen |= {p.fields["water_m3"] for p in decode_telemetry(msg.payload).points}
                        if set(range(1, 11)) <= seen:
                            break
    assert set(range(1, 11)) <= seen
