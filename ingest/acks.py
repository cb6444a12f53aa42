"""Acknowledge MQTT messages in the order they arrived, each only once its fate is sealed.

A message is *settled* when its points were accepted by InfluxDB, or it went to the dead letter, or it
carried nothing to store. The broker gets the PUBACK of a message only when it and every message
received before it are settled (MQTT asks for PUBACKs in arrival order), so a crash at any moment
leaves every unsettled message with the broker, which redelivers it to the next session.
The number of unacknowledged messages is bounded: `wait_for_room` holds the receiver back.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class Ticket:
    """One received message awaiting its acknowledgement."""

    __slots__ = ("mid", "qos", "settled")

    def __init__(self, mid: int, qos: int) -> None:
        self.mid = mid
        self.qos = qos
        self.settled = False


class AckSequencer:
    """In-order acknowledgements with a bound on messages in flight.

    Args:
        ack: sends the acknowledgements of QoS 1 messages (their packet ids, in order) to the broker;
            called once per `settle` that releases any.
        limit: most messages received but not yet acknowledged.
    """

    def __init__(self, ack: Callable[[list[int]], object], limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self._ack = ack
        self._limit = limit
        self._pending: deque[Ticket] = deque()
        self._room = asyncio.Event()
        self._room.set()
        self.acked = 0

    @property
    def in_flight(self) -> int:
        """Messages received and not yet acknowledged."""
        return len(self._pending)

    def open(self, mid: int, qos: int) -> Ticket:
        """Register a message just received (in arrival order).

        Args:
            mid: its packet id.
            qos: its QoS (0 needs no acknowledgement but keeps its place in the order; the ingest
                subscribes at QoS 1, so nothing arrives at 2).
        """
        ticket = Ticket(mid, qos)
        self._pending.append(ticket)
        if len(self._pending) >= self._limit:
            self._room.clear()
        return ticket

    def settle(self, ticket: Ticket) -> None:
        """Mark a message done; acknowledge it and every settled message queued behind it.

        Args:
            ticket: from `open`.
        """
        ticket.settled = True
        pending = self._pending
        mids: list[int] = []
        while pending and pending[0].settled:
            head = pending.popleft()
            if head.qos > 0:
                mids.append(head.mid)
            self.acked += 1
        if mids:
            self._ack(mids)
        if len(pending) < self._limit:
            self._room.set()

    async def wait_for_room(self) -> None:
        """Return once fewer than `limit` messages are in flight."""
        await self._room.wait()
