"""The issue #7 fast paths give the same answers as the plain ones: compiled block decoding, range deletes of
acknowledged rows, store-assigned ids, per-link scheduling, the sliding PUBACK window and its live rows."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import aiomqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edge_agent.publisher as publisher_module
from deploy.services import RunningService
from edge_agent.agent import EdgeAgent
from edge_agent.config import DeviceConfig
from edge_agent.poller import DeviceCoordinator, LinkScheduler
from edge_agent.registermap import (
    Function,
    PointMap,
    Template,
    compile_block,
    decode_block,
    load_template,
    template_names,
)
from edge_agent.store import Kind, ReadingStore
from parkmodel.codec import decode_telemetry
from tests.edge.conftest import ReadingSink, gateway_config, tcp_device
from tests.edge.modbus_server import tcp_server

ORDERS = [("big", "big"), ("big", "little"), ("little", "big"), ("little", "little")]


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    # NaN != NaN: compare the float bit patterns.
    return a.keys() == b.keys() and all(struct.pack("<d", a[k]) == struct.pack("<d", b[k]) for k in a)


@pytest.mark.parametrize("name", template_names())
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_compiled_block_decodes_every_shipped_template_like_decode_block(name: str, data: st.DataObject) -> None:
    template = load_template(name)
    for block in template.blocks():
        high = 1 if block.function.is_bit else 0xFFFF
        values = data.draw(st.lists(st.integers(0, high), min_size=block.count, max_size=block.count))
        assert _same(compile_block(block, template)(values), decode_block(block, values, template))


@pytest.mark.parametrize(("byte_order", "word_order"), ORDERS)
@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.integers(0, 0xFFFF), min_size=12, max_size=12))
def test_compiled_block_honours_every_byte_and_word_order(byte_order: str, word_order: str,
                                                          values: list[int]) -> None:
    points = [PointMap(point="voltage_v", address=0, type="int16"),  # type: ignore[arg-type]
              PointMap(point="current_a", address=1, type="uint32", scale=0.1),  # type: ignore[arg-type]
              PointMap(point="active_power_kw", address=3, type="float32", offset=-5),  # type: ignore[arg-type]
              PointMap(point="energy_import_kwh", address=5, type="float64"),  # type: ignore[arg-type]
              # a point overriding the template's order
              PointMap(point="frequency_hz", address=9, type="float32", byte_order="little",  # type: ignore[arg-type]
                       word_order="big")]
    template = Template(name="orders", byte_order=byte_order, word_order=word_order,  # type: ignore[arg-type]
                        points=points)
    (block,) = template.blocks()
    assert _same(compile_block(block, template)(values[: block.count]), decode_block(block, values[: block.count],
                                                                                      template))


def test_compiled_block_rejects_a_short_answer() -> None:
    template = load_template("block64_meter")
    (block,) = template.blocks()
    with pytest.raises(ValueError, match="needs 64 registers"):
        compile_block(block, template)([0] * 10)


def test_acks_with_gaps_delete_exactly_the_acknowledged_rows(tmp_path: Path) -> None:
    store = ReadingStore(tmp_path / "q.sqlite")
    items = store.append_many([("d", Kind.TELEMETRY, ts, {"water_m3": float(ts)}) for ts in range(20)])
    ids = [i.id for i in items]
    assert ids == list(range(ids[0], ids[0] + 20)) and [i.id for i in store.fetch(0, limit=100)] == ids
    acked = ids[0:3] + ids[5:6] + ids[9:15] + ids[19:]  # runs and singles, in any order
    store.ack(reversed(acked), {("d", Kind.TELEMETRY): 4})
    assert [i.id for i in store.fetch(0, limit=100)] == [i for i in ids if i not in acked]
    assert store.depth == 20 - len(acked)
    store.close()


def test_ids_are_never_reused_after_the_queue_emptied(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    store = ReadingStore(path)
    first = store.append_many([("d", Kind.TELEMETRY, 1, {"water_m3": 1.0}), ("d", Kind.TELEMETRY, 2, {"water_m3": 2.0})])
    store.ack([i.id for i in first], {})
    store.close()
    store = ReadingStore(path)  # empty now: AUTOINCREMENT's counter, not max(id), decides the next id
    single = store.append("d", Kind.TELEMETRY, 3, {"water_m3": 3.0})
    (again,) = store.append_many([("d", Kind.EVENT, 4, {"type": "smoke_alarm", "state": 1, "input": 0})])
    assert single == first[-1].id + 1 and again.id == single + 1 and again.body["state"] == 1
    assert [i.id for i in store.fetch(0)] == [single, again.id]
    store.close()


class _OrderLink:
    """A link that records which unit each read went to, answering at once."""

    def __init__(self) -> None:
        self.units: list[int] = []

    async def read(self, function: Function, address: int, count: int, unit: int, timeout_s: float) -> list[int]:
        self.units.append(unit)
        await asyncio.sleep(0.001)
        return [0] * count


async def test_one_scheduler_polls_every_device_of_its_link_on_its_own_slots() -> None:
    link, sink = _OrderLink(), ReadingSink()
    coordinators = [
        DeviceCoordinator(DeviceConfig.model_validate({
            "id": f"d{u}", "template": "block64_meter", "interval_s": 0.1,
            "transport": {"kind": "tcp", "host": "127.0.0.1", "port": 1502, "unit_id": u}}),
            load_template("block64_meter"), link, sink)  # type: ignore[arg-type]
        for u in (1, 2, 3)]
    task = asyncio.create_task(LinkScheduler(coordinators).run())
    await asyncio.sleep(0.55)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    per_unit = {u: link.units.count(u) for u in (1, 2, 3)}
    assert all(5 <= n <= 7 for n in per_unit.values()), per_unit  # once at start, then every 0.1 s
    assert all(c.health.polls_ok == per_unit[u] for u, c in zip((1, 2, 3), coordinators, strict=True))
    lateness = [x for c in coordinators for x in list(c.lateness)[1:]]
    assert lateness and max(lateness) < 0.05


async def test_window_respects_the_broker_receive_maximum_and_every_reading_arrives(
        broker: RunningService, uid: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A tiny in-memory cap makes the drain fall back to reading the store and catch up again, repeatedly.
    monkeypatch.setattr(publisher_module, "_LIVE_CAP", 3)
    devices = [f"m{n}{uid}" for n in range(4)]
    async with tcp_server([1, 2, 3, 4]) as (_, port):
        cfg = gateway_config(uid, tmp_path, broker.port,
                             [tcp_device(d, "block64_meter", port, unit=n + 1, interval_s=0.05)
                              for n, d in enumerate(devices)])
        received: dict[str, list[tuple[int, int]]] = {d: [] for d in devices}
        async with aiomqtt.Client(broker.host, broker.port, identifier=f"sub-{uid}") as sub:
            await sub.subscribe(f"sp/v1/p{uid}/e{uid}/+/telemetry", qos=1)
            async with EdgeAgent(cfg) as agent:
                assert agent.publisher is not None and agent.store is not None
                await asyncio.wait_for(agent.publisher.connected.wait(), 10)
                await asyncio.sleep(1.0)
                tracker = agent.publisher._pubacks
                assert tracker is not None and tracker.receive_maximum == 100  # the test broker's limit
                assert agent.publisher._window == 64
            polled = {d: agent.coordinators[d].health.polls_ok for d in devices}
            store = ReadingStore(cfg.store.path)  # what the agent had not delivered when it stopped
            left = {d: sum(1 for i in store.fetch(0, limit=100_000) if i.device == d) for d in devices}
            store.close()
            expected = {d: polled[d] - left[d] for d in devices}
            assert sum(expected.values()) > 60
            async with asyncio.timeout(10):
                async for msg in sub.messages:
                    t = decode_telemetry(msg.payload)
                    device = str(msg.topic).split("/")[4]
                    received[device] += [(t.seq, p.ts) for p in t.points]
                    if all(len({ts for _, ts in received[d]}) >= expected[d] for d in devices):
                        break
    for d in devices:
        seqs = sorted({s for s, _ in received[d]})
        assert seqs == list(range(len(seqs))), f"{d}: sequence gaps {seqs[:10]}"
        assert len({ts for _, ts in received[d]}) == expected[d]
