"""Store-and-forward: every reading is on disk before it is published, and leaves only when acknowledged.

An SQLite queue in WAL mode. Delivery is at-least-once: a reading is deleted only after the broker
acknowledged the QoS 1 publish that carried it (PUBACK), so a crash or a lost connection at any moment
loses nothing; it may repeat a reading, which the cloud overwrites (same device and `ts`).

Each call is one small transaction (WAL, `synchronous=NORMAL`: a commit appends to the WAL without an
fsync), so it runs on the event loop without stalling it noticeably; `bench`-style numbers are in the
tests. When the queue reaches `max_rows` the oldest telemetry is dropped first; events are never dropped.
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
        self.dropped = 0
        self._acks_ids: list[int] = []
        self._acks_seq: dict[tuple[str, Kind], int] = {}
        self._acks_scheduled = False

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
        with self._transaction() as db:
            cur = db.execute("INSERT INTO outbox (device, kind, ts_ms, body) VALUES (?, ?, ?, ?)",
                             (device, kind.value, ts_ms, _encoder.encode(body)))
            self.depth += 1
            if self.depth > self.max_rows:
                excess = self.depth - self.max_rows
                gone = db.execute(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE kind = ? ORDER BY id LIMIT ?)",
                    (Kind.TELEMETRY.value, excess),
                ).rowcount
                self.depth -= gone
                self.dropped += gone
        return int(cur.lastrowid or 0)

    def append_many(self, rows: list[tuple[str, Kind, int, dict[str, Any]]]) -> None:
        """Queue several readings or events in one transaction (one commit instead of one per row).

        Args:
            rows: `(device, kind, ts_ms, body)` in arrival order.
        """
        if not rows:
            return
        with self._transaction() as db:
            db.executemany("INSERT INTO outbox (device, kind, ts_ms, body) VALUES (?, ?, ?, ?)",
                           [(device, kind.value, ts_ms, _encoder.encode(body)) for device, kind, ts_ms, body in rows])
            self.depth += len(rows)
            if self.depth > self.max_rows:
                excess = self.depth - self.max_rows
                gone = db.execute(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE kind = ? ORDER BY id LIMIT ?)",
                    (Kind.TELEMETRY.value, excess),
                ).rowcount
                self.depth -= gone
                self.dropped += gone

    def fetch(self, after_id: int, upto_id: int | None = None, limit: int = 500) -> list[StoredItem]:
        """Rows with `after_id < id <= upto_id`, oldest first."""
        rows = self._db.execute(
            "SELECT id, device, kind, ts_ms, body FROM outbox WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
            (after_id, upto_id if upto_id is not None else 2**62, limit),
        ).fetchall()
        return [StoredItem(r[0], r[1], Kind(r[2]), r[3], _decoder.decode(r[4])) for r in rows]

    def max_id(self) -> int:
        return int(self._db.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0])

    def ack(self, ids: Iterable[int], next_seq: dict[tuple[str, Kind], int]) -> None:
        """Delete acknowledged rows and persist the sequence counters they advanced, atomically."""
        with self._transaction() as db:
            before = db.total_changes
            db.executemany("DELETE FROM outbox WHERE id = ?", [(row_id,) for row_id in ids])
            self.depth -= db.total_changes - before
            db.executemany(
                "INSERT INTO seq (device, kind, next) VALUES (?, ?, ?) "
                "ON CONFLICT (device, kind) DO UPDATE SET next = max(next, excluded.next)",
                [(device, kind.value, n) for (device, kind), n in next_seq.items()],
            )

    def ack_soon(self, ids: Iterable[int], next_seq: dict[tuple[str, Kind], int]) -> None:
        """`ack`, deferred to the end of the current event-loop iteration and merged with the other acks of it.

        Many PUBACKs arrive in one iteration; one transaction for all of them instead of one each. A crash in
        between only means those rows are sent again (at-least-once, the cloud overwrites duplicates).

        Args:
            ids: rows carried by an acknowledged message.
            next_seq: the sequence counters it advanced.
        """
        self._acks_ids.extend(ids)
        for key, n in next_seq.items():
            self._acks_seq[key] = max(n, self._acks_seq.get(key, 0))
        if not self._acks_scheduled:
            self._acks_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush_acks)

    def flush_acks(self) -> None:
        """Apply the acknowledgements queued by `ack_soon` (called by the loop, and before closing)."""
        self._acks_scheduled = False
        if not self._acks_ids and not self._acks_seq:
            return
        ids, seqs = self._acks_ids, self._acks_seq
        self._acks_ids, self._acks_seq = [], {}
        self.ack(ids, seqs)

    def load_seqs(self) -> dict[tuple[str, Kind], int]:
        """The next sequence number of each (device, kind) published so far."""
        return {(d, Kind(k)): n for d, k, n in self._db.execute("SELECT device, kind, next FROM seq")}

    def counts(self) -> dict[str, int]:
        """Queued rows by kind."""
        return {k: n for k, n in self._db.execute("SELECT kind, count(*) FROM outbox GROUP BY kind")}

    def close(self) -> None:
        if self._acks_ids or self._acks_seq:
            self.flush_acks()
        self._db.close()
