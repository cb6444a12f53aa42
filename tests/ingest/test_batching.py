"""Batching by size and age (frozen clock) and in-order acknowledgement with a bounded window."""

from __future__ import annotations

import asyncio

import pytest

from ingest.acks import AckSequencer, Ticket
from ingest.batch import Accepted, Batcher


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def item(points: int, mid: int = 1) -> Accepted:
    return Accepted(Ticket(mid, 1), "t", b"", b"\n".join(b"l%d" % i for i in range(points)), points, 0.0)


def test_batch_is_due_by_size_or_by_age() -> None:
    clock = FakeClock()
    b = Batcher(max_points=10, max_age_s=0.5, clock=clock)
    assert b.due_in() is None
    b.add(item(4))
    assert b.due_in() == pytest.approx(0.5)
    clock.now += 0.3
    b.add(item(4))
    assert b.points == 8 and b.due_in() == pytest.approx(0.2)  # age counts from the first message
    clock.now += 0.2
    assert b.due_in() == 0.0
    b2 = Batcher(max_points=10, max_age_s=60, clock=clock)
    b2.add(item(6))
    b2.add(item(4))
    assert b2.due_in() == 0.0  # full


def test_take_returns_whole_messages_up_to_the_size() -> None:
    clock = FakeClock()
    b = Batcher(max_points=5, max_age_s=1, clock=clock)
    for n in (3, 3, 3, 1):
        b.add(item(n))
    first = b.take()
    assert [i.points for i in first] == [3, 3]  # never splits a message
    assert b.points == 4 and len(b) == 2
    assert [i.points for i in b.take()] == [3, 1]
    assert b.take() == [] and b.due_in() is None


def test_a_message_bigger_than_a_batch_goes_alone() -> None:
    b = Batcher(max_points=5, max_age_s=1, clock=FakeClock())
    b.add(item(12))
    b.add(item(1))
    assert [i.points for i in b.take()] == [12]


async def test_next_batch_waits_for_age_and_flush_empties() -> None:
    b = Batcher(max_points=100, max_age_s=0.05)
    b.add(item(2))
    batch = await asyncio.wait_for(b.next_batch(), 2)
    assert len(batch) == 1
    waiter = asyncio.create_task(b.next_batch())
    await asyncio.sleep(0.02)
    assert not waiter.done()  # nothing queued: waits
    b.flush()
    assert await asyncio.wait_for(waiter, 2) == []


async def test_next_batch_wakes_when_full() -> None:
    b = Batcher(max_points=3, max_age_s=30)
    waiter = asyncio.create_task(b.next_batch())
    b.add(item(1))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    b.add(item(2))
    assert len(await asyncio.wait_for(waiter, 2)) == 2


async def test_acks_go_out_in_arrival_order_within_the_window() -> None:
    sent: list[int] = []
    writes: list[list[int]] = []
    acks = AckSequencer(lambda mids: (writes.append(mids), sent.extend(mids)), limit=3)
    t1, t2, t3 = acks.open(1, 1), acks.open(2, 1), acks.open(3, 0)
    assert acks.in_flight == 3
    room = asyncio.create_task(acks.wait_for_room())
    await asyncio.sleep(0)
    assert not room.done()  # window full
    acks.settle(t2)  # settled, but 1 is not: nothing may be acked yet
    assert sent == [] and acks.in_flight == 3
    acks.settle(t1)
    assert sent == [1, 2] and acks.in_flight == 1  # QoS 0 (3) still holds its place
    assert writes == [[1, 2]]  # released together, acknowledged in one write
    await asyncio.wait_for(room, 1)
    acks.settle(t3)
    assert sent == [1, 2] and acks.in_flight == 0 and acks.acked == 3  # QoS 0 needs no PUBACK
    with pytest.raises(ValueError, match="limit"):
        AckSequencer(lambda mids: None, 0)
