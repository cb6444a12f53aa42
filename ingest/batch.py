"""Collect accepted messages into write batches by size and by age (pure logic plus one wait)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from ingest.acks import Ticket


@dataclass(slots=True)
class Accepted:
    """An accepted message: its line protocol and what is needed to acknowledge or dead-letter it.

    The lines stay one `bytes` per message (joined by `\\n`), so no Python object exists per point.
    """

    ticket: Ticket
    topic: str
    payload: bytes
    body: bytes
    points: int
    received_at: float  # monotonic seconds, for the batch latency metric


class Batcher:
    """Messages waiting to be written; a batch is due when it holds `max_points` or its oldest is `max_age_s` old.

    A message is never split across batches: its ack depends on all its points.

    Args:
        max_points: points that make a batch due at once.
        max_age_s: longest a point waits for its batch to fill.
        clock: monotonic clock in seconds (injectable for tests).
    """

    def __init__(self, max_points: int, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_points = max_points
        self.max_age_s = max_age_s
        self._clock = clock
        self._items: list[Accepted] = []
        self._points = 0
        self._first_at = 0.0
        self._changed = asyncio.Event()
        self._flushing = False

    @property
    def points(self) -> int:
        return self._points

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: Accepted) -> None:
        """Queue an accepted message.

        Args:
            item: the message and its lines.
        """
        first = not self._items
        if first:
            self._first_at = self._clock()
        self._items.append(item)
        self._points += item.points
        # Writers wait for the first message (to start its age) or a full batch; waking them on every
        # message cost more than the message itself at one reading per message.
        if first or self._points >= self.max_points:
            self._changed.set()

    def due_in(self) -> float | None:
        """Seconds until the batch is due (0 = now), or None when empty."""
        if not self._items:
            return None
        if self._points >= self.max_points:
            return 0.0
        return max(0.0, self._first_at + self.max_age_s - self._clock())

    def take(self) -> list[Accepted]:
        """Remove and return whole messages holding at least `max_points` points (or all there are)."""
        taken = 0
        count = 0
        for item in self._items:
            if taken >= self.max_points:
                break
            taken += item.points
            count += 1
        batch, self._items = self._items[:count], self._items[count:]
        self._points -= taken
        if self._items:
            self._first_at = self._clock()  # the rest waited for the writer, not for more data
        return batch

    def flush(self) -> None:
        """From now on whatever is queued is due at once (used when stopping)."""
        self._flushing = True
        self._changed.set()

    async def next_batch(self) -> list[Accepted]:
        """Wait until a batch is due and take it; empty only after `flush()` with nothing queued."""
        while True:
            wait = self.due_in()
            if self._flushing or wait == 0.0:
                return self.take()
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._changed.wait()
