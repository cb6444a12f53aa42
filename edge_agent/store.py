"""Store-and-forward: every reading is on disk before it is published, and leaves only when acknowledged.

An SQLite queue in WAL mode. Delivery is at-least-once: a reading is deleted only after the broker
acknowledged the QoS 1 publish that carried it (PUBACK), so a crash or a lost connection at any moment
loses nothing; it may repeat a reading, which the cloud overwrites (same device and `ts`).

Each call is one small transaction (WAL, `synchronous=NORMAL`: a commit appends to the WAL without an
fsync), so it runs on the event loop without stalling it noticeably. The agent commits its readings in
groups (`append_many`, every few milliseconds) and acknowledgements join the next commit (`ack_soon`):
at a thousand devices commits, not rows, were the cost. Ids are assigned here, never reused, in
arrival order. When the queue reaches `max_rows` the oldest telemetry is dropped first; events never.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["Kind", "ReadingStore", "StoredItem"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_kind ON outbox (kind, id);
CREATE TABLE IF NOT EXISTS seq (
    device TEXT NOT NULL,
    kind TEXT NOT NULL,
    next INTEGER NOT NULL,
    PRIMARY KEY (device, kind)
);
"""


class Kind(StrEnum):
    TELEMETRY = "telemetry"
    EVENT = "event"


@dataclass(frozen=True, slots=True)
class StoredItem:
    id: int
    device: str
    kind: Kind
    ts_ms: int
    body: dict[str, Any]


_KINDS = {k.value: k for k in Kind}
#: Acknowledgements wait at most this long for a commit (they usually join the next append's).
_ACK_DELAY_S = 0.01
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(dict[str, Any])


class ReadingStore:
    """The on-disk queue of one gateway.

    Args:
        path: the SQLite file (created with its folder).
        max_rows: cap; beyond it the oldest telemetry rows are dropped (events never).
    """

    def __init__(self, path: Path, max_rows: int = 1_000_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_rows = max_rows
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self.depth: int = self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        # Ids are assigned here (as AUTOINCREMENT would: never reused), so `append_many` can return them.
        last_used = self._db.execute("SELECT max(coalesce((SELECT max(id) FROM outbox), 0), coalesce("
                                     "(SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0))").fetchone()[0]
        self._next_id = int(last_used) + 1
        self.dropped = 0
        self._acks_ids: list[int] = []
        self._acks_seq: dict[tuple[str, Kind], int] = {}
        self._acks_timer: asyncio.TimerHandle | None = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def append(self, device: str, kind: Kind, ts_ms: int, body: dict[str, Any]) -> int:
        """Queue one reading or event; returns its id (ids grow in arrival order)."""
        row_id = self._next_id
        with self._transaction() as db:
            db.execute("INSERT INTO outbox (id, device, kind, ts_ms, body) VALUES (?, ?, ?, ?, ?)",
                       (row_id, device, kind.value, ts_ms, _encoder.encode(body)))
            self._next_id = row_id + 1
            self.depth += 1
            self._trim(db)
        return row_id

    def _trim(self, db: sqlite3.Connection) -> None:
        """Over `max_rows`: drop the oldest telemetry (events are kept), counted in `dropped`."""
        if self.depth > self.max_rows:
            gone = db.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE kind = ? ORDER BY id LIMIT ?)",
                (Kind.TELEMETRY.value, self.depth - self.max_rows),
            ).rowcount
            self.depth -= gone
            self.dropped += gone

    def append_many(self, rows: list[tuple[str, Kind, int, dict[str, Any]]]) -> list[StoredItem]:
        """Queue several readings or events in one transaction (one commit instead of one per row).

        Args:
            rows: `(device, kind, ts_ms, body)` in arrival order.

        Returns:
            The rows as stored (ids in arrival order), for a publisher that need not read them back.
        """
        if not rows:
            return []
        encode = _encoder.encode
        first = self._next_id
        with self._transaction() as db:
            # Acknowledgements queued by `ack_soon` ride along: one commit per event-loop iteration, not two.
            self._apply_acks(db)
            db.executemany("INSERT INTO outbox (id, device, kind, ts_ms, body) VALUES (?, ?, ?, ?, ?)",
                           [(first + i, device, kind.value, ts_ms, encode(body))
                            for i, (device, kind, ts_ms, body) in enumerate(rows)])
            self._next_id = first + len(rows)
            self.depth += len(rows)
            self._trim(db)
        return [StoredItem(first + i, device, kind, ts_ms, body) for i, (device, kind, ts_ms, body) in enumerate(rows)]

    def fetch(self, after_id: int, upto_id: int | None = None, limit: int = 500) -> list[StoredItem]:
        """Rows with `after_id < id <= upto_id`, oldest first."""
        rows = self._db.execute(
            "SELECT id, device, kind, ts_ms, body FROM outbox WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
            (after_id, upto_id if upto_id is not None else 2**62, limit),
        ).fetchall()
        kinds, decode = _KINDS, _decoder.decode
        return [StoredItem(r[0], r[1], kinds[r[2]], r[3], decode(r[4])) for r in rows]

    def max_id(self) -> int:
        return int(self._db.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0])

    def ack(self, ids: Iterable[int], next_seq: dict[tuple[str, Kind], int]) -> None:
        """Delete acknowledged rows and persist the sequence counters they advanced, atomically."""
        with self._transaction() as db:
            self._delete_acked(db, ids, next_seq)

    def _delete_acked(self, db: sqlite3.Connection, ids: Iterable[int], next_seq: dict[tuple[str, Kind], int]) -> None:
        before = db.total_changes
        # Acknowledged ids come in long consecutive runs: one range delete per run, not one statement per row.
        db.executemany("DELETE FROM outbox WHERE id BETWEEN ? AND ?", _runs(ids))
        self.depth -= db.total_changes - before
        db.executemany(
            "INSERT INTO seq (device, kind, next) VALUES (?, ?, ?) "
            "ON CONFLICT (device, kind) DO UPDATE SET next = max(next, excluded.next)",
            [(device, kind.value, n) for (device, kind), n in next_seq.items()],
        )

    def _apply_acks(self, db: sqlite3.Connection) -> None:
        if self._acks_ids or self._acks_seq:
            ids, seqs = self._acks_ids, self._acks_seq
            self._acks_ids, self._acks_seq = [], {}
            self._delete_acked(db, ids, seqs)

    def ack_soon(self, ids: Iterable[int], next_seq: dict[tuple[str, Kind], int]) -> None:
        """`ack`, deferred by up to `_ACK_DELAY_S` and merged with the other acks of it and with the next
        `append_many` (whichever commits first).

        Many PUBACKs arrive close together; one transaction for all of them instead of one each. A crash in
        between only means those rows are sent again (at-least-once, the cloud overwrites duplicates).

        Args:
            ids: rows carried by an acknowledged message.
            next_seq: the sequence counters it advanced.
        """
        self._acks_ids.extend(ids)
        for key, n in next_seq.items():
            self._acks_seq[key] = max(n, self._acks_seq.get(key, 0))
        if self._acks_timer is None:
            self._acks_timer = asyncio.get_running_loop().call_later(_ACK_DELAY_S, self.flush_acks)

    def flush_acks(self) -> None:
        """Apply the acknowledgements queued by `ack_soon` (called by the loop, and before closing)."""
        if self._acks_timer is not None:
            self._acks_timer.cancel()  # when called directly (closing)
            self._acks_timer = None
        if not self._acks_ids and not self._acks_seq:
            return
        with self._transaction() as db:
            self._apply_acks(db)

    def load_seqs(self) -> dict[tuple[str, Kind], int]:
        """The next sequence number of each (device, kind) published so far."""
        return {(d, Kind(k)): n for d, k, n in self._db.execute("SELECT device, kind, next FROM seq")}

    def counts(self) -> dict[str, int]:
        """Queued rows by kind."""
        return {k: n for k, n in self._db.execute("SELECT kind, count(*) FROM outbox GROUP BY kind")}

    def close(self) -> None:
        self.flush_acks()
        self._db.close()


def _runs(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted ids as inclusive `(first, last)` runs of consecutive values."""
    runs: list[tuple[int, int]] = []
    first = last = None
    for i in sorted(ids):
        if last is not None and i == last + 1:
            last = i
            continue
        if first is not None and last is not None:
            runs.append((first, last))
        first = last = i
    if first is not None and last is not None:
        runs.append((first, last))
    return runs
