"""The batched store paths (group commits) and a poller that survives a swallowed cancel."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge_agent.config import DeviceConfig
from edge_agent.poller import DeviceCoordinator, DeviceHealth, Reading
from edge_agent.registermap import Function, load_template
from edge_agent.store import _ACK_DELAY_S, Kind, ReadingStore


def test_append_many_is_one_transaction_with_the_same_cap(tmp_path: Path) -> None:
    store = ReadingStore(tmp_path / "q.sqlite", max_rows=10)
    store.append_many([("d", Kind.EVENT, 1, {"type": "smoke_alarm", "state": 1, "input": 0})])
    store.append_many([("d", Kind.TELEMETRY, ts, {"water_m3": float(ts)}) for ts in range(2, 30)])
    store.append_many([])
    assert store.depth == 10 and store.dropped == 19
    items = store.fetch(0)
    assert items[0].kind is Kind.EVENT and [i.ts_ms for i in items[1:]] == list(range(21, 30))
    store.close()


async def test_ack_soon_merges_acks_and_close_flushes(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    store = ReadingStore(path)
    ids = [store.append("d", Kind.TELEMETRY, ts, {"water_m3": 1.0}) for ts in range(6)]
    store.ack_soon(ids[:2], {("d", Kind.TELEMETRY): 3})
    store.ack_soon(ids[2:3], {("d", Kind.TELEMETRY): 2})  # an older counter never lowers the newer one
    assert store.depth == 6  # not yet: within _ACK_DELAY_S, in one transaction
    await asyncio.sleep(_ACK_DELAY_S + 0.02)
    assert store.depth == 3 and store.load_seqs() == {("d", Kind.TELEMETRY): 3}
    store.ack_soon(ids[3:4], {("d", Kind.TELEMETRY): 4})
    store.close()  # before the loop ran the flush: closing applies it
    store = ReadingStore(path)
    assert [i.id for i in store.fetch(0)] == ids[4:] and store.load_seqs() == {("d", Kind.TELEMETRY): 4}
    store.close()


class SwallowingLink:
    """A link whose read, like pymodbus under load, turns a cancellation into an ordinary answer."""

    def __init__(self) -> None:
        self.reads = 0
        self.third_read = asyncio.Event()

    async def read(self, function: Function, address: int, count: int, unit: int, timeout_s: float) -> list[int]:
        self.reads += 1
        if self.reads >= 3:
            self.third_read.set()
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            pass  # swallowed
        return [0] * count

    def close(self) -> None:
        pass


class Sink:
    def on_reading(self, reading: Reading) -> None:
        pass

    def on_health(self, device: str, health: DeviceHealth) -> None:
        pass


async def test_a_poller_stops_even_when_the_library_swallows_the_cancel() -> None:
    device = DeviceConfig.model_validate({"id": "d1", "template": "block64_meter", "interval_s": 0.05,
                                          "transport": {"kind": "tcp", "host": "127.0.0.1", "port": 1502}})
    link = SwallowingLink()
    coordinator = DeviceCoordinator(device, load_template("block64_meter"), link, Sink())  # type: ignore[arg-type]
    task = asyncio.create_task(coordinator.run())
    await link.third_read.wait()  # the poller now sits inside a read, where the library swallows the cancel
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)
    assert done, "the poller kept polling after being cancelled"
    assert task.cancelled()
    assert len(coordinator.lateness) >= 3 and all(x >= 0 for x in coordinator.lateness)
