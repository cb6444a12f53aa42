"""SQLite store of enterprise economic data with an append-only history of every change.

`{settings.var_dir}/economy.sqlite` (WAL). Table `economic_data` holds the current figures, one row per
enterprise and month with a version counter; table `economic_history` records who changed what and when
(the figures before and after, and which fields changed). Triggers refuse UPDATE and DELETE on the
history, so it can only grow.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reports.economy import FIGURE_KEYS, EconomicRecord

_COLUMNS = ", ".join(f"{k} REAL" for k in FIGURE_KEYS)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS economic_data (
    enterprise TEXT NOT NULL,
    month TEXT NOT NULL,
    {_COLUMNS},
    version INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (enterprise, month)
);
CREATE TABLE IF NOT EXISTS economic_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    enterprise TEXT NOT NULL,
    month TEXT NOT NULL,
    version INTEGER NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('create', 'update', 'delete')),
    changed_by TEXT NOT NULL,
    changed_at INTEGER NOT NULL,
    source TEXT NOT NULL,
    changed_fields TEXT NOT NULL,
    before TEXT,
    after TEXT
);
CREATE INDEX IF NOT EXISTS economic_history_key ON economic_history (enterprise, month, id);
CREATE TRIGGER IF NOT EXISTS economic_history_no_update BEFORE UPDATE ON economic_history
BEGIN SELECT RAISE(ABORT, 'economic_history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS economic_history_no_delete BEFORE DELETE ON economic_history
BEGIN SELECT RAISE(ABORT, 'economic_history is append-only'); END;
"""


class NotFound(KeyError):
    """No figures for that enterprise and month."""


class VersionConflict(ValueError):
    """The row changed since the caller read it (optimistic locking)."""


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record with its bookkeeping.

    Attributes:
        record: the figures.
        version: 1 on creation, +1 per change.
        updated_at: epoch ms of the last change.
        updated_by: who made it.
    """

    record: EconomicRecord
    version: int
    updated_at: int
    updated_by: str

    def as_dict(self) -> dict[str, Any]:
        return {"enterprise": self.record.enterprise, "month": self.record.month, **self.record.figures(),
                "version": self.version, "updated_at": self.updated_at, "updated_by": self.updated_by}


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the history."""

    id: int
    enterprise: str
    month: str
    version: int
    action: str
    changed_by: str
    changed_at: int
    source: str
    changed_fields: list[str]
    before: dict[str, float | None] | None
    after: dict[str, float | None] | None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "enterprise": self.enterprise, "month": self.month, "version": self.version,
                "action": self.action, "changed_by": self.changed_by, "changed_at": self.changed_at,
                "source": self.source, "changed_fields": self.changed_fields, "before": self.before,
                "after": self.after}


class EconomyStore:
    """Economic data of enterprises, versioned.

    Each call opens its own connection, so one store serves threads (FastAPI's threadpool) safely.

    Args:
        path: the SQLite file (created with its folder if missing).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    @staticmethod
    def _row(row: sqlite3.Row) -> StoredRecord:
        figures = {k: row[k] for k in FIGURE_KEYS}
        return StoredRecord(EconomicRecord.of(row["enterprise"], row["month"], figures), row["version"],
                            row["updated_at"], row["updated_by"])

    def get(self, enterprise: str, month: str) -> StoredRecord:
        """The figures of one enterprise and month.

        Raises:
            NotFound: none stored.
        """
        with self._connect() as db:
            row = db.execute("SELECT * FROM economic_data WHERE enterprise = ? AND month = ?",
                             (enterprise, month)).fetchone()
        if row is None:
            raise NotFound(f"no economic data for {enterprise} {month}")
        return self._row(row)

    def records(self, enterprises: Iterable[str] | None = None, months: Iterable[str] | None = None
             ) -> list[StoredRecord]:
        """Stored records, optionally only of some enterprises and months, ordered by enterprise and month."""
        where, args = [], []
        for column, values in (("enterprise", enterprises), ("month", months)):
            if values is not None:
                vals = list(values)
                where.append(f"{column} IN ({', '.join('?' * len(vals))})" if vals else "0")
                args.extend(vals)
        sql = "SELECT * FROM economic_data" + (f" WHERE {' AND '.join(where)}" if where else "")
        with self._connect() as db:
            rows = db.execute(sql + " ORDER BY enterprise, month", args).fetchall()
        return [self._row(r) for r in rows]

    def revision(self) -> int:
        """A number that grows with every change (the last history id; 0 when nothing was ever stored)."""
        with self._connect() as db:
            row = db.execute("SELECT COALESCE(MAX(id), 0) FROM economic_history").fetchone()
        return int(row[0])

    def latest_month(self) -> str | None:
        """The latest month any enterprise reported (`YYYY-MM`), None when the store is empty."""
        with self._connect() as db:
            row = db.execute("SELECT MAX(month) FROM economic_data").fetchone()
        return row[0] if row and row[0] else None

    def history(self, enterprise: str | None = None, month: str | None = None, limit: int = 1000) -> list[Change]:
        """Changes, newest first."""
        where, args = [], []
        if enterprise is not None:
            where.append("enterprise = ?")
            args.append(enterprise)
        if month is not None:
            where.append("month = ?")
            args.append(month)
        sql = "SELECT * FROM economic_history" + (f" WHERE {' AND '.join(where)}" if where else "")
        with self._connect() as db:
            rows = db.execute(sql + " ORDER BY id DESC LIMIT ?", [*args, limit]).fetchall()
        return [Change(r["id"], r["enterprise"], r["month"], r["version"], r["action"], r["changed_by"],
                       r["changed_at"], r["source"], json.loads(r["changed_fields"]),
                       json.loads(r["before"]) if r["before"] else None,
                       json.loads(r["after"]) if r["after"] else None) for r in rows]

    def put_many(self, records: Iterable[EconomicRecord], user: str, source: str) -> tuple[int, int, int]:
        """Create or replace records in one transaction (an import): all or nothing.

        Args:
            records: the figures.
            user: who changes them.
            source: where from (e.g. `import:economy-2026.xlsx`, `api`).

        Returns:
            `(created, updated, unchanged)` counts.
        """
        counts = [0, 0, 0]
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                for rec in records:
                    counts[self._put(db, rec, user, source, None)] += 1
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return counts[0], counts[1], counts[2]

    def put(self, record: EconomicRecord, user: str, source: str, expected_version: int | None = None
            ) -> StoredRecord:
        """Create or replace one record.

        Args:
            record: the figures.
            user: who changes them.
            source: where from.
            expected_version: refuse unless the stored version is this (0: must not exist yet).

        Raises:
            VersionConflict: the stored version differs from `expected_version`.
        """
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                self._put(db, record, user, source, expected_version)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return self.get(record.enterprise, record.month)

    def patch(self, enterprise: str, month: str, changes: Mapping[str, float | None], user: str, source: str,
              expected_version: int | None = None) -> StoredRecord:
        """Change some figures of a stored record.

        Raises:
            NotFound: nothing stored for that enterprise and month.
            VersionConflict: see `put`.
            ValueError: an unknown field.
        """
        unknown = set(changes) - set(FIGURE_KEYS)
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)}; expected some of {list(FIGURE_KEYS)}")
        current = self.get(enterprise, month)
        merged = current.record.figures() | dict(changes)
        return self.put(EconomicRecord.of(enterprise, month, merged), user, source,
                        current.version if expected_version is None else expected_version)

    def delete(self, enterprise: str, month: str, user: str, source: str) -> None:
        """Delete a record (the history keeps its last figures).

        Raises:
            NotFound: nothing stored.
        """
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT * FROM economic_data WHERE enterprise = ? AND month = ?",
                                 (enterprise, month)).fetchone()
                if row is None:
                    raise NotFound(f"no economic data for {enterprise} {month}")
                old = self._row(row)
                db.execute("DELETE FROM economic_data WHERE enterprise = ? AND month = ?", (enterprise, month))
                self._log(db, enterprise, month, old.version + 1, "delete", user, source,
                          [k for k, v in old.record.figures().items() if v is not None], old.record.figures(), None)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _put(self, db: sqlite3.Connection, rec: EconomicRecord, user: str, source: str,
             expected_version: int | None) -> int:
        row = db.execute("SELECT * FROM economic_data WHERE enterprise = ? AND month = ?",
                         (rec.enterprise, rec.month)).fetchone()
        old = self._row(row) if row is not None else None
        have = old.version if old is not None else 0
        if expected_version is not None and expected_version != have:
            raise VersionConflict(f"{rec.enterprise} {rec.month} is at version {have}, not {expected_version}; "
                                  "read it again and reapply the change")
        new = rec.figures()
        before = old.record.figures() if old is not None else None
        changed = [k for k in FIGURE_KEYS if before is None or before[k] != new[k]]
        if old is not None and not changed:
            return 2
        now = int(time.time() * 1000)
        version = have + 1
        values = [new[k] for k in FIGURE_KEYS]
        db.execute(f"INSERT OR REPLACE INTO economic_data (enterprise, month, {', '.join(FIGURE_KEYS)}, version, "
                   f"updated_at, updated_by) VALUES ({', '.join('?' * (len(FIGURE_KEYS) + 5))})",
                   [rec.enterprise, rec.month, *values, version, now, user])
        self._log(db, rec.enterprise, rec.month, version, "create" if old is None else "update", user, source,
                  changed, before, new)
        return 0 if old is None else 1

    @staticmethod
    def _log(db: sqlite3.Connection, enterprise: str, month: str, version: int, action: str, user: str,
             source: str, changed: list[str], before: dict[str, float | None] | None,
             after: dict[str, float | None] | None) -> None:
        db.execute("INSERT INTO economic_history (enterprise, month, version, action, changed_by, changed_at, source, "
                   "changed_fields, before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (enterprise, month, version, action, user, int(time.time() * 1000), source, json.dumps(changed),
                    json.dumps(before) if before is not None else None,
                    json.dumps(after) if after is not None else None))


def economy_path(var_dir: Path | str) -> Path:
    """Where the economic data lives: `{var_dir}/economy.sqlite`."""
    return Path(var_dir) / "economy.sqlite"

