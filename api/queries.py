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


def history_query(device: str, fields: Sequence[str] | None, window: HistoryWindow) -> str:
    """Downsampled (GROUP BY time, mean) history of one device's telemetry."""
    if fields is None:
        select = "mean(*)"
    else:
        select = ", ".join(f"mean({quote_ident(f)}) AS {quote_ident(f)}" for f in _checked_fields(fields))
    return (
        f"SELECT {select} FROM \"telemetry\" WHERE \"device\" = {quote_string(_checked_id(device))} "
        f"AND time >= {int(window.start_ms)}ms AND time < {int(window.end_ms)}ms "
        f"GROUP BY time({int(window.every_s)}s) fill(none)"
    )


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


#: KPI keys of measurement `kpi` (interfaces.md; analytics.aggregate.KPI_KEYS mirrors them).
KPI_KEYS: tuple[str, ...] = (
    "load_kw", "generation_kw", "pv_kw", "wind_kw", "grid_import_kw", "grid_export_kw", "green_supply_kw",
    "storage_kw", "consumed_today_kwh", "grid_import_today_kwh", "grid_export_today_kwh", "generation_today_kwh",
    "green_supply_today_kwh", "renewable_consumed_today_kwh", "new_energy_ratio_today", "gas_today_m3",
    "steam_today_t", "water_today_m3", "devices_reporting", "devices_total",
    "tce_today", "co2_today_kg", "co2_scope1_today_kg", "co2_scope2_today_kg", "carbon_intensity_tco2_per_tce",
)


def kpi_aggregate(key: str) -> str:
    """`last` for running totals of the day (a mean of a growing counter means nothing), `mean` for powers."""
    return "last" if "_today" in key else "mean"


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


def kpi_history_query(scope: str, ident: str, keys: Sequence[str], window: HistoryWindow) -> str:
    """Downsampled history of one park's or enterprise's KPIs from measurement `kpi`."""
    if scope not in ("park", "enterprise"):
        raise ValueError(f"unknown kpi scope {scope!r}")
    for key in keys:
        if key not in KPI_KEYS:
            raise ValueError(f"refusing to put KPI {key!r} into a query: not a KPI key")
    select = ", ".join(f"{kpi_aggregate(k)}({quote_ident(k)}) AS {quote_ident(k)}" for k in keys)
    return (
        f"SELECT {select} FROM \"kpi\" WHERE \"scope\" = {quote_string(scope)} "
        f"AND {quote_ident(scope)} = {quote_string(_checked_id(ident))} "
        f"AND time >= {int(window.start_ms)}ms AND time < {int(window.end_ms)}ms "
        f"GROUP BY time({int(window.every_s)}s) fill(none)"
    )


def latest_enterprise_kpis_query(park: str) -> str:
    """The last `kpi` row of every enterprise of one park."""
    return (f"SELECT * FROM \"kpi\" WHERE \"scope\" = 'enterprise' AND \"park\" = {quote_string(_checked_id(park))} "
            "GROUP BY \"enterprise\" ORDER BY time DESC LIMIT 1")
