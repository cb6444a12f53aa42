"""InfluxQL built from validated parts only: never a raw request string in a query.

Ids are checked against the registry by the caller and again against the id pattern here, field names
against the point dictionary, times are integers (ms) and intervals are whole seconds. Identifiers are
double-quoted and string literals single-quoted, each with its escape rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from api.errors import invalid
from parkmodel.ids import is_valid_id
from parkmodel.points import POINTS
from smartpark.config import InfluxSettings
from smartpark.influx_schema import (
    KPI_KEYS,
    SOURCE_1H,
    SOURCE_1M,
    SOURCE_RAW,
    aggregate_select,
    kpi_aggregate,
    telemetry_aggregate,
)

MAX_POINTS = 2000
MAX_FIELDS = len(POINTS)
MAX_RANGE_MS = 400 * 24 * 3600 * 1000
DEFAULT_RANGE_MS = 3600 * 1000
# Ladder of "nice" downsampling intervals (seconds) the automatic choice picks from.
NICE_INTERVALS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
                    172800, 604800)
_EVERY_RE = re.compile(r"^(\d{1,7})(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EPOCH_MS_RE = re.compile(r"^-?\d{1,15}$")


def quote_ident(name: str) -> str:
    """An InfluxQL identifier, double-quoted with `\\` and `"` escaped."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    """An InfluxQL string literal, single-quoted with `\\` and `'` escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse_time(value: str, param: str) -> int:
    """Epoch milliseconds from ISO 8601 (with an offset or Z) or from an integer of epoch ms.

    Args:
        value: the query parameter as given.
        param: its name, for the error message.
    """
    text = value.strip()
    if _EPOCH_MS_RE.match(text):
        return int(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(f"{param}={value!r} is neither ISO 8601 (e.g. 2024-05-01T08:00:00+08:00) nor epoch ms",
                      param) from None
    if parsed.tzinfo is None:
        raise invalid(f"{param}={value!r} has no time zone; add 'Z' or an offset such as '+08:00'", param)
    return int(parsed.timestamp() * 1000)


def parse_every(value: str) -> int:
    """Seconds from `30s`, `5m`, `1h`, `1d` (or a bare number of seconds)."""
    text = value.strip()
    if text.isdigit():
        seconds = int(text)
    else:
        match = _EVERY_RE.match(text)
        if not match:
            raise invalid(f"every={value!r} is not an interval such as 10s, 5m, 1h or 1d", "every")
        seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds < 1:
        raise invalid("every must be at least 1s", "every")
    return seconds


def auto_every(range_ms: int, max_points: int = MAX_POINTS) -> int:
    """The smallest nice interval (seconds) that keeps `range_ms` at or under `max_points` buckets."""
    for seconds in NICE_INTERVALS_S:
        if range_ms / (seconds * 1000) <= max_points:
            return seconds
    return -(-range_ms // (max_points * 1000))


def parse_fields(value: str | None) -> list[str] | None:
    """Field names from a comma-separated list, each one a point of the dictionary; None means all."""
    if value is None or not value.strip():
        return None
    names: list[str] = []
    for raw in value.split(","):
        name = raw.strip()
        if name not in POINTS:
            shown = name if len(name) <= 60 else name[:60] + "..."
            raise invalid(f"unknown field {shown!r}; known fields: {', '.join(sorted(POINTS))}", "fields")
        if name not in names:
            names.append(name)
    return names


@dataclass(frozen=True, slots=True)
class HistoryWindow:
    start_ms: int
    end_ms: int
    every_s: int


def history_window(start: str | None, end: str | None, every: str | None, now_ms: int) -> HistoryWindow:
    """Validate the time range and the downsampling interval of a history request.

    Args:
        start: ISO 8601 or epoch ms; default one hour before `end`.
        end: ISO 8601 or epoch ms; default now.
        every: downsampling interval; default chosen so the range has at most ~2000 buckets.
        now_ms: the current time.
    """
    end_ms = parse_time(end, "end") if end is not None else now_ms
    start_ms = parse_time(start, "start") if start is not None else end_ms - DEFAULT_RANGE_MS
    if start_ms >= end_ms:
        raise invalid(f"start ({start_ms} ms) must be before end ({end_ms} ms)", "start")
    if end_ms - start_ms > MAX_RANGE_MS:
        raise invalid(f"the range is longer than {MAX_RANGE_MS // 86_400_000} days; query less at a time", "start")
    range_ms = end_ms - start_ms
    every_s = parse_every(every) if every is not None else auto_every(range_ms)
    if range_ms / (every_s * 1000) > MAX_POINTS * 5:
        raise invalid(f"every={every} gives more than {MAX_POINTS * 5} points for this range; choose a longer "
                      f"interval (at least {auto_every(range_ms, MAX_POINTS * 5)}s)", "every")
    return HistoryWindow(start_ms, end_ms, every_s)


def _checked_id(value: str) -> str:
    # The registry check happens first; this guards against a caller that forgot it.
    if not is_valid_id(value):
        raise ValueError(f"refusing to put {value!r} into a query: not a contract id")
    return value


def _checked_fields(fields: Iterable[str]) -> list[str]:
    names = list(fields)
    for name in names:
        if name not in POINTS:
            raise ValueError(f"refusing to put field {name!r} into a query: not in the point dictionary")
    return names


@dataclass(frozen=True, slots=True)
class HistorySource:
    """Where history is read from: the raw data (the database's default policy) or a rollup policy."""

    name: str  # "raw", "rollup_1m" or "rollup_1h", as the API reports it
    rp: str | None  # None: the default policy (raw; works before `smartpark influx setup` ran)
    interval_s: int  # resolution of the stored rows (raw: 1 s for alignment purposes)


def history_sources(settings: InfluxSettings, every_s: int) -> list[HistorySource]:
    """The sources able to serve buckets of `every_s`, coarsest first; raw, always last, serves any.

    A rollup serves a bucket only when the bucket is a whole number of its rows: 1-hour rows for
    `every` 1h, 2h, 1d...; 1-minute rows for 1m, 5m, 15m...

    Args:
        settings: names of the rollup policies.
        every_s: the bucket asked for.
    """
    sources = [HistorySource(SOURCE_RAW, None, 1)]
    if every_s % 60 == 0:
        sources.insert(0, HistorySource(SOURCE_1M, settings.rollup_1m_rp, 60))
    if every_s % 3600 == 0:
        sources.insert(0, HistorySource(SOURCE_1H, settings.rollup_1h_rp, 3600))
    return sources


def _from(measurement: str, source: HistorySource) -> str:
    if source.rp is None:
        return quote_ident(measurement)
    return f"{quote_ident(source.rp)}.{quote_ident(measurement)}"


@dataclass(frozen=True, slots=True)
class HistoryTarget:
    """What a history reads: a measurement, a checked `WHERE` filter and the aggregated select list."""

    measurement: str
    where: str
    select: str

    def query(self, source: HistorySource, start_ms: int, end_ms: int, every_s: int) -> str:
        """Buckets of `every_s` over [start, end) from `source`, each field with its own aggregate."""
        return (f"SELECT {self.select} FROM {_from(self.measurement, source)} WHERE {self.where} "
                f"AND time >= {int(start_ms)}ms AND time < {int(end_ms)}ms "
                f"GROUP BY time({int(every_s)}s) fill(none)")

    def coverage_query(self, source: HistorySource, start_ms: int, end_ms: int) -> str:
        """Two statements: the first and the last stored row of `source` inside [start, end)."""
        base = (f"SELECT * FROM {_from(self.measurement, source)} WHERE {self.where} "
                f"AND time >= {int(start_ms)}ms AND time < {int(end_ms)}ms")
        return f"{base} ORDER BY time ASC LIMIT 1; {base} ORDER BY time DESC LIMIT 1"


def telemetry_target(device: str, fields: Sequence[str] | None) -> HistoryTarget:
    """History of one device's telemetry: `mean` of instant values, `last` of counters, `max` of states.

    Args:
        device: a device id (checked by the caller against the registry).
        fields: points of the dictionary; None for all of them.
    """
    names = list(POINTS) if fields is None else _checked_fields(fields)
    return HistoryTarget("telemetry", f"\"device\" = {quote_string(_checked_id(device))}",
                         aggregate_select((f, telemetry_aggregate(f)) for f in names))


def history_query(device: str, fields: Sequence[str] | None, window: HistoryWindow,
                  source: HistorySource | None = None) -> str:
    """Downsampled (GROUP BY time) history of one device's telemetry from `source` (default: raw)."""
    return telemetry_target(device, fields).query(source or HistorySource(SOURCE_RAW, None, 1), window.start_ms,
                                                  window.end_ms, window.every_s)


def latest_queries(device: str, fields: Iterable[str] = POINTS) -> str:
    """One statement per field: `last()` of several fields at once would lose each field's own time."""
    dev = quote_string(_checked_id(device))
    return "; ".join(
        f"SELECT last({quote_ident(f)}) AS \"value\" FROM \"telemetry\" WHERE \"device\" = {dev}"
        for f in _checked_fields(fields)
    )


def latest_kpi_query(scope: str, ident: str | None = None) -> str:
    """The last `kpi` row of one park or enterprise, or (ident None, scope park) of every park."""
    if scope not in ("park", "enterprise"):
        raise ValueError(f"unknown kpi scope {scope!r}")
    where = f"\"scope\" = {quote_string(scope)}"
    if ident is None:
        return f"SELECT * FROM \"kpi\" WHERE {where} GROUP BY \"park\" ORDER BY time DESC LIMIT 1"
    return (f"SELECT * FROM \"kpi\" WHERE {where} AND {quote_ident(scope)} = {quote_string(_checked_id(ident))} "
            "ORDER BY time DESC LIMIT 1")


def parse_kpi_fields(value: str | None) -> list[str]:
    """KPI keys from a comma-separated list; every key when none is given."""
    if value is None or not value.strip():
        return list(KPI_KEYS)
    names: list[str] = []
    for raw in value.split(","):
        name = raw.strip()
        if name not in KPI_KEYS:
            shown = name if len(name) <= 60 else name[:60] + "..."
            raise invalid(f"unknown KPI {shown!r}; known KPIs: {', '.join(KPI_KEYS)}", "fields")
        if name not in names:
            names.append(name)
    return names


def kpi_target(scope: str, ident: str, keys: Sequence[str]) -> HistoryTarget:
    """History of one park's or enterprise's KPIs: `mean` of powers, `last` of running totals.

    Args:
        scope: "park" or "enterprise".
        ident: the park or enterprise id.
        keys: KPI keys.
    """
    if scope not in ("park", "enterprise"):
        raise ValueError(f"unknown kpi scope {scope!r}")
    for key in keys:
        if key not in KPI_KEYS:
            raise ValueError(f"refusing to put KPI {key!r} into a query: not a KPI key")
    where = f"\"scope\" = {quote_string(scope)} AND {quote_ident(scope)} = {quote_string(_checked_id(ident))}"
    return HistoryTarget("kpi", where, aggregate_select((k, kpi_aggregate(k)) for k in keys))


def kpi_history_query(scope: str, ident: str, keys: Sequence[str], window: HistoryWindow,
                      source: HistorySource | None = None) -> str:
    """Downsampled history of one park's or enterprise's KPIs from measurement `kpi` (default: raw)."""
    return kpi_target(scope, ident, keys).query(source or HistorySource(SOURCE_RAW, None, 1), window.start_ms,
                                                window.end_ms, window.every_s)


def latest_enterprise_kpis_query(park: str) -> str:
    """The last `kpi` row of every enterprise of one park."""
    return (f"SELECT * FROM \"kpi\" WHERE \"scope\" = 'enterprise' AND \"park\" = {quote_string(_checked_id(park))} "
            "GROUP BY \"enterprise\" ORDER BY time DESC LIMIT 1")
