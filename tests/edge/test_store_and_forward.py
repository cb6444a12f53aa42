"""Store-and-forward through a real broker outage, and the on-disk queue's own guarantees."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiomqtt

from deploy.services import free_port, mosquitto
from edge_agent.agent import EdgeAgent
from edge_agent.registermap import Function, load_template
from edge_agent.store import Kind, ReadingStore
from parkmodel.codec import decode_telemetry
from tests.edge.conftest import gateway_config, tcp_device
from tests.edge.modbus_server import tcp_server


async def test_readings_queued_while_broker_is_down_all_arrive_in_order(uid: str, tmp_path: Path) -> None:
    port, data_dir = free_port(), tmp_path / "mosquitto"
    topic = f"sp/v1/p{uid}/e{uid}/w{uid}/telemetry"
    sub_id = f"sub-{uid}"

    def subscriber() -> aiomqtt.Client:
        return aiomqtt.Client("127.0.0.1", port, identifier=sub_id, clean_session=False)

    # The test's own persistent subscription exists before the outage, so nothing published later is missed
    # (deploy.services keeps mosquitto's persistence writable, so the session survives the restart).
    with mosquitto(data_dir, port):
        async with subscriber() as sub:
            await sub.subscribe(topic, qos=1)

    async with tcp_server([1]) as (served, modbus_port):
        cfg = gateway_config(uid, tmp_path, port, [tcp_device(f"w{uid}", "water_meter_badc", modbus_port,
                                                              interval_s=0.05)],
                             drain_rate_per_s=100, batch_points=10)
        async with EdgeAgent(cfg) as agent:
            assert agent.store is not None
            # the meter counts up, so every reading is distinguishable
            template = load_template("water_meter_badc")
            for n in range(1, 1000):
                served.set(1, Function.HOLDING, 0, template.points[0].encode(n, template.byte_order, template.word_order))
                await asyncio.sleep(0.05)
                if agent.store.depth >= 20:
                    break
            assert not agent.publisher.connected.is_set()
            queued = [(item.ts_ms, item.body["water_m3"]) for item in agent.store.fetch(0, None, 10_000)]
            started = time.monotonic()
            broker = mosquitto(data_dir, port, )
            await asyncio.to_thread(broker.__enter__)
            try:
                async with subscriber() as sub:
                    arrived: list[tuple[int, float]] = []
                    sizes: list[int] = []
                    async with asyncio.timeout(10):
                        async for msg in sub.messages:
                            t = decode_telemetry(msg.payload)
                            sizes.append(len(t.points))
                            arrived += [(p.ts, p.fields["water_m3"]) for p in t.points]
                            if set(queued) <= set(arrived):
                                break
                    drained_in = time.monotonic() - started
            finally:
                await asyncio.to_thread(broker.__exit__, None, None, None)
    assert len(queued) >= 20
    assert set(queued) <= set(arrived), "a queued reading was lost"
    backlog_order = [a for a in arrived if a in set(queued)]
    assert backlog_order == sorted(queued), "the backlog did not arrive in order"
    assert max(sizes) > 1, "the backlog was not batched"
    assert drained_in < 8


def test_store_cap_drops_oldest_telemetry_never_events(tmp_path: Path) -> None:
    store = ReadingStore(tmp_path / "q.sqlite", max_rows=10)
    store.append("d", Kind.EVENT, 1, {"type": "smoke_alarm", "state": 1, "input": 0})
    for ts in range(2, 30):
        store.append("d", Kind.TELEMETRY, ts, {"water_m3": float(ts)})
    assert store.depth == 10 and store.dropped == 19
    items = store.fetch(0)
    assert items[0].kind is Kind.EVENT
    assert [i.ts_ms for i in items[1:]] == list(range(21, 30))
    for _ in range(15):
        store.append("d", Kind.EVENT, 99, {"type": "smoke_alarm", "state": 0, "input": 0})
    assert store.counts() == {"event": 16}  # over the cap: events are kept
    store.close()


def test_store_survives_reopen_and_ack_persists_seq(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    store = ReadingStore(path)
    ids = [store.append("d", Kind.TELEMETRY, ts, {"water_m3": 1.0}) for ts in range(5)]
    store.ack(ids[:2], {("d", Kind.TELEMETRY): 7})
    store.close()
    store = ReadingStore(path)
    assert store.depth == 3 and [i.id for i in store.fetch(0)] == ids[2:]
    assert store.load_seqs() == {("d", Kind.TELEMETRY): 7}
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
