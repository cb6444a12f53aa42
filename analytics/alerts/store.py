"""The alert store: one SQLite file (WAL) shared by every alert worker and the API; the source of truth.

Tables: `alerts` (one open alert per rule and source, enforced by a partial unique index and written
with an upsert), `alert_events` (the lifecycle history, also the feed of notifications), `outbox`
(one row per notification and recipient, delivered at least once, in order per recipient), `attempts`
(every delivery attempt), `leases` (which worker fans out and which delivers to a recipient),
`device_seen` (last reading per device, merged over workers) and `load_hourly` (load baselines).

Write transactions are `BEGIN IMMEDIATE`, so concurrent workers serialise on SQLite's write lock
instead of failing on a lock upgrade. Methods are synchronous; async callers run them in one
dedicated thread (see `engine.py`); the API calls them from its thread pool.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from analytics.alerts.rules import SEVERITIES, Severity

__all__ = ["AlertConflict", "AlertDraft", "AlertFilter", "AlertNotFound", "AlertStore", "OutboxRow", "Target"]

OPEN = ("raised", "acknowledged", "cleared")
ALERT_COLUMNS = (
    "id", "category", "rule", "source", "severity", "level", "state", "park", "enterprise", "device", "point",
    "location", "value", "limit", "message_zh", "message_en", "raised_at", "updated_at", "count", "acked_by",
    "acked_at", "ack_comment", "cleared_at", "closed_at", "escalated",
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, category TEXT NOT NULL, rule TEXT NOT NULL, source TEXT NOT NULL,
    severity TEXT NOT NULL, level INTEGER, state TEXT NOT NULL, park TEXT NOT NULL, enterprise TEXT,
    device TEXT, point TEXT, location TEXT, value REAL, "limit" REAL, message_zh TEXT, message_en TEXT,
    raised_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, count INTEGER NOT NULL DEFAULT 1,
    acked_by TEXT, acked_at INTEGER, ack_comment TEXT, cleared_at INTEGER, closed_at INTEGER,
    escalated INTEGER NOT NULL DEFAULT 0, escalate_after_ms INTEGER, notified_at INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open ON alerts(rule, source) WHERE state != 'closed';
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts(category, raised_at);
CREATE TABLE IF NOT EXISTS alert_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL, event TEXT NOT NULL, ts INTEGER NOT NULL,
    alert TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_events_by_alert ON alert_events(alert_id, seq);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, delivery_id TEXT NOT NULL UNIQUE, target TEXT NOT NULL,
    topic TEXT, alert_id TEXT NOT NULL, event TEXT NOT NULL, body BLOB NOT NULL, created_at INTEGER NOT NULL,
    state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL, delivered_at INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(target, state, seq);
CREATE INDEX IF NOT EXISTS outbox_by_alert ON outbox(alert_id, target, created_at);
CREATE TABLE IF NOT EXISTS attempts (
    delivery_id TEXT NOT NULL, attempt INTEGER NOT NULL, ts INTEGER NOT NULL, ok INTEGER NOT NULL,
    status INTEGER, error TEXT, duration_ms REAL
);
CREATE INDEX IF NOT EXISTS attempts_by_delivery ON attempts(delivery_id, attempt);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, until INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS device_seen (device TEXT PRIMARY KEY, ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS load_hourly (
    enterprise TEXT NOT NULL, hour_start INTEGER NOT NULL, mean_kw REAL NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (enterprise, hour_start)
);
"""


class AlertNotFound(LookupError):
    """No alert with that id."""


class AlertConflict(ValueError):
    """The alert is not in a state that allows the operation (e.g. acknowledging a closed alert)."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class AlertDraft:
    """What a rule evaluation says about one rule and source."""

    rule: str
    source: str  # "device/<id>", "enterprise/<id>" or "gateway/<id>"
    category: str
    severity: Severity
    level: int | None
    park: str
    enterprise: str | None
    device: str | None
    point: str | None
    location: str
    value: float | None
    limit: float | None
    message_zh: str
    message_en: str
    escalate_after_ms: int | None = None
    update_interval_ms: int = 60_000


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Filter of `AlertStore.list` (None = any)."""

    categories: tuple[str, ...] | None = None
    state: str | None = None
    severity: str | None = None
    park: str | None = None
    enterprise: str | None = None
    since: int | None = None
    until: int | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Target:
    """A recipient of notifications: `mqtt` (with a topic per message) or `webhook:<subscriber>`."""

    name: str
    topic: str | None = None
    max_per_minute: int | None = None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    seq: int
    delivery_id: str
    target: str
    topic: str | None
    alert_id: str
    event: str
    body: bytes
    attempts: int
    next_at: int


#: Lifecycle notices are never suppressed by a recipient's rate limit; repeats and reminders may be.
ESSENTIAL_EVENTS = frozenset({"raised", "escalated", "acknowledged", "cleared", "closed"})


class AlertStore:
    """Alerts, their history and their notification outbox in one SQLite file.

    Args:
        path: the SQLite file (created with its folder if missing).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        with self._tx() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # --- alerts ---------------------------------------------------------------------------------

    @staticmethod
    def _public(row: sqlite3.Row) -> dict[str, Any]:
        out = {k: row[k] for k in ALERT_COLUMNS}
        out["escalated"] = bool(out["escalated"])
        return out

    @staticmethod
    def _emit(db: sqlite3.Connection, alert_id: str, event: str, ts: int) -> tuple[str, dict[str, Any]]:
        row = db.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        alert = AlertStore._public(row)
        db.execute("INSERT INTO alert_events (alert_id, event, ts, alert) VALUES (?, ?, ?, ?)",
                   (alert_id, event, ts, orjson.dumps(alert)))
        return event, alert

    def raise_or_repeat(self, draft: AlertDraft, *, change: str, at_ms: int | None = None
                        ) -> list[tuple[str, dict[str, Any]]]:
        """Record a raise (new alert or higher level) or a repeat of the open alert of the draft's rule and source.

        A repeat folds into the open alert (count, last value) and emits `updated` at most once per
        `update_interval_ms`. A raise of an alert that had cleared unacknowledged, or of a higher level,
        puts it back to `raised` and emits `raised`.

        Args:
            draft: the evaluation result.
            change: "raise" or "repeat".
            at_ms: time of the change (default: now).

        Returns:
            The events emitted, as (event, alert) pairs.
        """
        ts = now_ms() if at_ms is None else at_ms
        d = draft
        with self._tx() as db:
            prev = db.execute("SELECT * FROM alerts WHERE rule = ? AND source = ? AND state != 'closed'",
                              (d.rule, d.source)).fetchone()
            new_id = str(uuid.uuid4())
            # The upsert keeps one open alert per rule and source even against a writer that skipped the SELECT.
            row = db.execute(
                """INSERT INTO alerts (id, category, rule, source, severity, level, state, park, enterprise, device,
                       point, location, value, "limit", message_zh, message_en, raised_at, updated_at, count,
                       escalate_after_ms, notified_at)
                   VALUES (?, ?, ?, ?, ?, ?, 'raised', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)
                   ON CONFLICT (rule, source) WHERE state != 'closed' DO UPDATE SET
                       count = count + 1, value = excluded.value, updated_at = excluded.updated_at,
                       level = max(coalesce(level, 0), coalesce(excluded.level, 0)),
                       "limit" = CASE WHEN coalesce(excluded.level, 0) > coalesce(level, 0)
                                      THEN excluded."limit" ELSE "limit" END,
                       severity = CASE WHEN (CASE excluded.severity WHEN 'critical' THEN 2 WHEN 'warning' THEN 1
                                             ELSE 0 END) >
                                            (CASE severity WHEN 'critical' THEN 2 WHEN 'warning' THEN 1 ELSE 0 END)
                                       THEN excluded.severity ELSE severity END,
                       message_zh = CASE WHEN coalesce(excluded.level, 0) > coalesce(level, 0)
                                         THEN excluded.message_zh ELSE message_zh END,
                       message_en = CASE WHEN coalesce(excluded.level, 0) > coalesce(level, 0)
                                         THEN excluded.message_en ELSE message_en END
                   RETURNING id""",
                (new_id, d.category, d.rule, d.source, d.severity, d.level, d.park, d.enterprise, d.device, d.point,
                 d.location, d.value, d.limit, d.message_zh, d.message_en, ts, ts, d.escalate_after_ms, ts),
            ).fetchone()
            alert_id = row["id"]
            if prev is None:
                return [self._emit(db, alert_id, "raised", ts)]
            higher = (d.level or 0) > (prev["level"] or 0)
            if change == "raise" and (higher or prev["state"] == "cleared"):
                db.execute("UPDATE alerts SET state = 'raised', cleared_at = NULL, notified_at = ? WHERE id = ?",
                           (ts, alert_id))
                return [self._emit(db, alert_id, "raised", ts)]
            if ts - (prev["notified_at"] or 0) >= d.update_interval_ms:
                db.execute("UPDATE alerts SET notified_at = ? WHERE id = ?", (ts, alert_id))
                return [self._emit(db, alert_id, "updated", ts)]
            return []

    def clear(self, rule: str, source: str, value: float | None, *, at_ms: int | None = None
              ) -> list[tuple[str, dict[str, Any]]]:
        """The condition of the open alert of `rule` and `source` is gone: cleared, or closed if acknowledged.

        Args:
            rule: rule id.
            source: source key.
            value: the value that cleared it (kept as the last value).
            at_ms: time of the change (default: now).
        """
        ts = now_ms() if at_ms is None else at_ms
        with self._tx() as db:
            prev = db.execute("SELECT id, state FROM alerts WHERE rule = ? AND source = ? AND state != 'closed'",
                              (rule, source)).fetchone()
            if prev is None or prev["state"] == "cleared":
                return []
            value_sql = ", value = ?" if value is not None else ""
            args: tuple[Any, ...] = (ts, ts, *((value,) if value is not None else ()), prev["id"])
            if prev["state"] == "acknowledged":
                db.execute(f"UPDATE alerts SET state = 'closed', cleared_at = ?, closed_at = ?{value_sql}, "
                           "updated_at = cleared_at WHERE id = ?", args)
                return [self._emit(db, prev["id"], "cleared", ts), self._emit(db, prev["id"], "closed", ts)]
            db.execute(f"UPDATE alerts SET state = 'cleared', cleared_at = ?, updated_at = ?{value_sql} WHERE id = ?",
                       args)
            return [self._emit(db, prev["id"], "cleared", ts)]

    def acknowledge(self, alert_id: str, user: str, comment: str = "", *, at_ms: int | None = None
                    ) -> dict[str, Any]:
        """Acknowledge an alert (closing it if its condition already cleared).

        Args:
            alert_id: the alert id.
            user: who acknowledges.
            comment: free text.
            at_ms: time of the acknowledgement (default: now).

        Raises:
            AlertNotFound: no such alert.
            AlertConflict: the alert is already acknowledged or closed.
        """
        ts = now_ms() if at_ms is None else at_ms
        with self._tx() as db:
            prev = db.execute("SELECT state FROM alerts WHERE id = ?", (alert_id,)).fetchone()
            if prev is None:
                raise AlertNotFound(alert_id)
            if prev["state"] not in ("raised", "cleared"):
                raise AlertConflict(f"alert {alert_id} is {prev['state']}, it cannot be acknowledged again")
            closing = prev["state"] == "cleared"
            db.execute("UPDATE alerts SET state = ?, acked_by = ?, acked_at = ?, ack_comment = ?, updated_at = ?, "
                       "closed_at = ? WHERE id = ?",
                       ("closed" if closing else "acknowledged", user, ts, comment, ts, ts if closing else None,
                        alert_id))
            events = [self._emit(db, alert_id, "acknowledged", ts)]
            if closing:
                events.append(self._emit(db, alert_id, "closed", ts))
            return events[-1][1]

    def escalate_due(self, *, at_ms: int | None = None) -> list[tuple[str, dict[str, Any]]]:
        """Escalate safety alerts left unacknowledged past their rule's limit (severity up one step)."""
        ts = now_ms() if at_ms is None else at_ms
        with self._tx() as db:
            rows = db.execute(
                """UPDATE alerts SET escalated = 1, updated_at = ?,
                       severity = CASE severity WHEN 'info' THEN 'warning' ELSE 'critical' END
                   WHERE state = 'raised' AND escalated = 0 AND escalate_after_ms IS NOT NULL
                     AND raised_at + escalate_after_ms <= ?
                   RETURNING id""", (ts, ts)).fetchall()
            return [self._emit(db, r["id"], "escalated", ts) for r in rows]

    def open_levels(self) -> dict[tuple[str, str], int]:
        """(rule, source) → level of every alert whose condition is active (raised or acknowledged)."""
        rows = self._read("SELECT rule, source, level FROM alerts WHERE state IN ('raised', 'acknowledged')")
        return {(r["rule"], r["source"]): r["level"] or 1 for r in rows}

    def get(self, alert_id: str) -> dict[str, Any] | None:
        """One alert as its public JSON, or None."""
        rows = self._read("SELECT * FROM alerts WHERE id = ?", (alert_id,))
        return self._public(rows[0]) if rows else None

    def list(self, flt: AlertFilter = AlertFilter()) -> tuple[list[dict[str, Any]], int]:
        """Alerts matching a filter, newest first, and how many match in all.

        Args:
            flt: the filter and page.
        """
        where, args = [], []
        if flt.categories:
            where.append(f"category IN ({','.join('?' * len(flt.categories))})")
            args.extend(flt.categories)
        for column in ("state", "severity", "park", "enterprise"):
            value = getattr(flt, column)
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if flt.since is not None:
            where.append("updated_at >= ?")
            args.append(flt.since)
        if flt.until is not None:
            where.append("raised_at < ?")
            args.append(flt.until)
        sql_where = f"WHERE {' AND '.join(where)}" if where else ""
        total = self._read(f"SELECT count(*) AS n FROM alerts {sql_where}", tuple(args))[0]["n"]
        rows = self._read(f"SELECT * FROM alerts {sql_where} ORDER BY raised_at DESC, id LIMIT ? OFFSET ?",
                          (*args, flt.limit, flt.offset))
        return [self._public(r) for r in rows], total

    def history(self, alert_id: str) -> list[dict[str, Any]]:
        """The lifecycle events of an alert, oldest first."""
        rows = self._read("SELECT seq, event, ts FROM alert_events WHERE alert_id = ? ORDER BY seq", (alert_id,))
        return [dict(r) for r in rows]

    def deliveries(self, alert_id: str) -> list[dict[str, Any]]:
        """Every notification of an alert with every attempt to deliver it."""
        rows = self._read("SELECT * FROM outbox WHERE alert_id = ? ORDER BY seq", (alert_id,))
        out = []
        for r in rows:
            attempts = self._read("SELECT attempt, ts, ok, status, error, duration_ms FROM attempts "
                                  "WHERE delivery_id = ? ORDER BY attempt", (r["delivery_id"],))
            out.append({
                "delivery_id": r["delivery_id"], "target": r["target"], "topic": r["topic"], "event": r["event"],
                "state": r["state"], "created_at": r["created_at"], "delivered_at": r["delivered_at"],
                "attempts": [{**dict(a), "ok": bool(a["ok"])} for a in attempts],
            })
        return out

    # --- notification fan-out and outbox ---------------------------------------------------------

    def acquire_lease(self, name: str, owner: str, ttl_ms: int, *, at_ms: int | None = None) -> bool:
        """Take or renew a named lease; True if `owner` holds it for the next `ttl_ms`."""
        ts = now_ms() if at_ms is None else at_ms
        with self._tx() as db:
            row = db.execute(
                """INSERT INTO leases (name, owner, until) VALUES (?, ?, ?)
                   ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
                   WHERE leases.until < ? OR leases.owner = excluded.owner
                   RETURNING owner""", (name, owner, ts + ttl_ms, ts)).fetchone()
            return row is not None

    def release_leases(self, owner: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM leases WHERE owner = ?", (owner,))

    @staticmethod
    def _enqueue(db: sqlite3.Connection, target: Target, alert: dict[str, Any], event: str, ts: int,
                 extra: dict[str, Any] | None = None) -> None:
        delivery_id = str(uuid.uuid4())
        state = "pending"
        if target.max_per_minute is not None and event not in ESSENTIAL_EVENTS:
            sent = db.execute("SELECT count(*) FROM outbox WHERE target = ? AND created_at > ? AND state != "
                              "'suppressed'", (target.name, ts - 60_000)).fetchone()[0]
            if sent >= target.max_per_minute:
                state = "suppressed"
        body = orjson.dumps({"v": 1, "event": event, "alert": alert, "delivery_id": delivery_id, "ts": ts,
                             **(extra or {})})
        db.execute("INSERT INTO outbox (delivery_id, target, topic, alert_id, event, body, created_at, state, "
                   "next_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (delivery_id, target.name, target.topic, alert["id"], event, body, ts, state, ts))

    def fan_out(self, route: Callable[[str, dict[str, Any]], list[Target]], *, batch: int = 500,
                at_ms: int | None = None) -> int:
        """Turn new lifecycle events into outbox rows, one per recipient, in event order.

        Call only while holding the `fanout` lease. The cursor advances in the same transaction as the
        rows are written, so an event is fanned out exactly once.

        Args:
            route: the recipients of an (event, alert).
            batch: events per call at most.
            at_ms: time of the fan-out (default: now).

        Returns:
            The number of events fanned out.
        """
        ts = now_ms() if at_ms is None else at_ms
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'fanout_cursor'").fetchone()
            cursor = int(row["value"]) if row else 0
            events = db.execute("SELECT seq, event, alert FROM alert_events WHERE seq > ? ORDER BY seq LIMIT ?",
                                (cursor, batch)).fetchall()
            for ev in events:
                alert = orjson.loads(ev["alert"])
                for target in route(ev["event"], alert):
                    self._enqueue(db, target, alert, ev["event"], ts)
                cursor = ev["seq"]
            if events:
                db.execute("INSERT INTO meta (key, value) VALUES ('fanout_cursor', ?) "
                           "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(cursor),))
            return len(events)

    def remind(self, target: Target, interval_ms: int, *, at_ms: int | None = None) -> int:
        """Re-notify `target` of alerts it was told about that are still unacknowledged after `interval_ms`."""
        ts = now_ms() if at_ms is None else at_ms
        with self._tx() as db:
            rows = db.execute(
                """SELECT a.* FROM alerts a JOIN outbox o ON o.alert_id = a.id AND o.target = ?
                   WHERE a.state = 'raised' GROUP BY a.id HAVING max(o.created_at) <= ?""",
                (target.name, ts - interval_ms)).fetchall()
            for r in rows:
                self._enqueue(db, target, self._public(r), "updated", ts, {"reminder": True})
            return len(rows)

    def due_targets(self, *, at_ms: int | None = None) -> list[str]:
        """Recipients whose oldest pending notification is due."""
        ts = now_ms() if at_ms is None else at_ms
        rows = self._read(
            """SELECT o.target FROM outbox o JOIN (
                   SELECT target, min(seq) AS head FROM outbox WHERE state = 'pending' GROUP BY target
               ) h ON o.seq = h.head WHERE o.next_at <= ?""", (ts,))
        return [r["target"] for r in rows]

    def head(self, target: str) -> OutboxRow | None:
        """The oldest pending notification of a recipient (delivery is in order per recipient)."""
        rows = self._read("SELECT seq, delivery_id, target, topic, alert_id, event, body, attempts, next_at "
                          "FROM outbox WHERE target = ? AND state = 'pending' ORDER BY seq LIMIT 1", (target,))
        return OutboxRow(**dict(rows[0])) if rows else None

    def record_attempt(self, row: OutboxRow, *, ok: bool, status: int | None, error: str, duration_ms: float,
                       retry_at: int | None, at_ms: int | None = None) -> None:
        """Log one delivery attempt; mark the row delivered, or schedule its retry at `retry_at`."""
        ts = now_ms() if at_ms is None else at_ms
        with self._tx() as db:
            db.execute("INSERT INTO attempts (delivery_id, attempt, ts, ok, status, error, duration_ms) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (row.delivery_id, row.attempts + 1, ts, int(ok), status, error, duration_ms))
            if ok:
                db.execute("UPDATE outbox SET state = 'delivered', attempts = attempts + 1, delivered_at = ? "
                           "WHERE seq = ?", (ts, row.seq))
            else:
                db.execute("UPDATE outbox SET attempts = attempts + 1, next_at = ? WHERE seq = ?",
                           (retry_at if retry_at is not None else ts, row.seq))

    def outbox_stats(self) -> dict[str, int]:
        rows = self._read("SELECT state, count(*) AS n FROM outbox GROUP BY state")
        return {r["state"]: r["n"] for r in rows}

    # --- device liveness and load baselines ------------------------------------------------------

    def merge_seen(self, seen: dict[str, int]) -> dict[str, int]:
        """Merge this worker's last-reading times into the shared table; return the merged table."""
        with self._tx() as db:
            db.executemany("INSERT INTO device_seen (device, ts) VALUES (?, ?) ON CONFLICT (device) "
                           "DO UPDATE SET ts = max(ts, excluded.ts)", list(seen.items()))
            return {r["device"]: r["ts"] for r in db.execute("SELECT device, ts FROM device_seen")}

    def save_hour(self, enterprise: str, hour_start: int, mean_kw: float, n: int) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO load_hourly (enterprise, hour_start, mean_kw, n) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (enterprise, hour_start) DO UPDATE SET mean_kw = excluded.mean_kw, n = excluded.n",
                       (enterprise, hour_start, mean_kw, n))

    def hourly(self, enterprises: list[str], hour_starts: list[int]) -> dict[tuple[str, int], float]:
        """Stored hourly means for the given enterprises and hours."""
        if not enterprises or not hour_starts:
            return {}
        rows = self._read(
            f"SELECT enterprise, hour_start, mean_kw FROM load_hourly WHERE enterprise IN "
            f"({','.join('?' * len(enterprises))}) AND hour_start IN ({','.join('?' * len(hour_starts))})",
            (*enterprises, *hour_starts))
        return {(r["enterprise"], r["hour_start"]): r["mean_kw"] for r in rows}


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)  # type: ignore[arg-type]
