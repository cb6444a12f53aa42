"""InfluxDB storage layout: retention policies, rollups by continuous query, and their set-up.

Layout (InfluxDB 1.x, names and durations from `InfluxSettings`):

- `raw` (DEFAULT, 30 days): everything ingest and analytics write, untouched (they write to the default
  policy and need no change).
- `rollup_1m` (2 years) and `rollup_1h` (10 years): measurements `telemetry` and `kpi` per 1-minute and
  1-hour bucket, filled by continuous queries (`raw` -> `rollup_1m` -> `rollup_1h`) with `GROUP BY *`, so
  the tags stay tags.

A rollup row keeps the raw field names (`mean("active_power_kw") AS "active_power_kw"`), not the
`mean_<field>` names of `mean(*)`: each field has one aggregate that is right for it, and a reader applies
that same aggregate to any policy and gets a consistent answer:

- instant values (power, concentrations, KPI powers): `mean` (a mean of 1-minute means is the exact mean
  when the minutes are evenly sampled),
- cumulative counters (kWh, m³, the KPIs' running totals of the day): `last`,
- 0/1 states (smoke alarm): `max` (an alarm inside the bucket shows).

Continuous queries only run on schedule over recent time (`RESAMPLE ... FOR`), so data that arrives later
than that (an edge gateway's store-and-forward after a long outage) or that predates the policies is rolled
up by `backfill_rollups` (`smartpark influx backfill`), which runs the very same `SELECT ... INTO`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from parkmodel.points import POINTS, PointKind
from smartpark.config import ConfigError, InfluxSettings, influx_duration_s, load_settings

log = logging.getLogger("smartpark.influx_schema")

#: KPI keys of measurement `kpi` (docs/contracts.md; `analytics.aggregate.KPI_KEYS` writes them).
KPI_KEYS: tuple[str, ...] = (
    "load_kw", "generation_kw", "pv_kw", "wind_kw", "grid_import_kw", "grid_export_kw", "green_supply_kw",
    "storage_kw", "consumed_today_kwh", "grid_import_today_kwh", "grid_export_today_kwh", "generation_today_kwh",
    "green_supply_today_kwh", "renewable_consumed_today_kwh", "new_energy_ratio_today", "gas_today_m3",
    "steam_today_t", "water_today_m3", "devices_reporting", "devices_total",
    "tce_today", "co2_today_kg", "co2_scope1_today_kg", "co2_scope2_today_kg", "carbon_intensity_tco2_per_tce",
    "demand_15min_kw", "max_demand_month_kw", "contracted_capacity_kw",
)
# Values that hold or accumulate over a period: the last one of a bucket is the bucket's value.
_KPI_LAST = frozenset({"carbon_intensity_tco2_per_tce", "demand_15min_kw", "max_demand_month_kw",
                       "contracted_capacity_kw"})
_POINT_AGGREGATE = {PointKind.INSTANT: "mean", PointKind.COUNTER: "last", PointKind.STATE: "max"}

SOURCE_RAW = "raw"
SOURCE_1M = "rollup_1m"
SOURCE_1H = "rollup_1h"


def telemetry_aggregate(field: str) -> str:
    """The InfluxQL aggregate that summarises `field` of measurement `telemetry` over a bucket.

    Args:
        field: a point of the dictionary.
    """
    return _POINT_AGGREGATE[POINTS[field].kind]


def kpi_aggregate(key: str) -> str:
    """The InfluxQL aggregate that summarises KPI `key` over a bucket (`last` of running totals, else `mean`).

    Args:
        key: a KPI key.
    """
    return "last" if "_today" in key or key in _KPI_LAST else "mean"


#: Measurements rolled up, each with its fields and the aggregate of each field.
ROLLED_UP: dict[str, tuple[tuple[str, str], ...]] = {
    "telemetry": tuple((name, telemetry_aggregate(name)) for name in POINTS),
    "kpi": tuple((key, kpi_aggregate(key)) for key in KPI_KEYS),
}


def quote_ident(name: str) -> str:
    """An InfluxQL identifier, double-quoted with `\\` and `"` escaped."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def aggregate_select(fields: Iterable[tuple[str, str]]) -> str:
    """`agg("f") AS "f", ...`: the select list shared by rollups and the readers of any policy.

    Args:
        fields: (field, aggregate) pairs.
    """
    return ", ".join(f"{agg}({quote_ident(name)}) AS {quote_ident(name)}" for name, agg in fields)


def shard_duration_s(duration_s: int) -> int:
    """InfluxDB's own choice of shard group duration for a retention duration (0 = infinite)."""
    if duration_s == 0 or duration_s > 180 * 86_400:
        return 7 * 86_400
    if duration_s >= 2 * 86_400:
        return 86_400
    return 3_600


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionPolicy:
    name: str
    duration: str
    default: bool = False

    @property
    def duration_s(self) -> int:
        return influx_duration_s(self.duration)

    @property
    def shard_duration(self) -> str:
        return f"{shard_duration_s(self.duration_s)}s"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rollup:
    """One rollup level: a retention policy filled from `source_rp` by `GROUP BY time(interval_s)`."""

    source: str  # SOURCE_1M or SOURCE_1H, what the API reports
    rp: str
    source_rp: str
    interval_s: int
    resample_every: str
    resample_for: str


def retention_policies(settings: InfluxSettings) -> list[RetentionPolicy]:
    """The policies of the database, the raw one DEFAULT.

    Args:
        settings: names and durations.
    """
    return [
        RetentionPolicy(name=settings.raw_rp, duration=settings.raw_retention, default=True),
        RetentionPolicy(name=settings.rollup_1m_rp, duration=settings.rollup_1m_retention),
        RetentionPolicy(name=settings.rollup_1h_rp, duration=settings.rollup_1h_retention),
    ]


def rollups(settings: InfluxSettings) -> list[Rollup]:
    """The rollup levels, finest first (each is filled from the previous one).

    The 1-minute CQ runs every minute over the last 10 (readings up to 10 minutes late still count); the
    1-hour CQ runs every hour over the last 3 (complete hours only; `rollup_1m` catches up first).

    Args:
        settings: names of the policies.
    """
    return [
        Rollup(source=SOURCE_1M, rp=settings.rollup_1m_rp, source_rp=settings.raw_rp, interval_s=60,
               resample_every="1m", resample_for="10m"),
        Rollup(source=SOURCE_1H, rp=settings.rollup_1h_rp, source_rp=settings.rollup_1m_rp, interval_s=3600,
               resample_every="1h", resample_for="3h"),
    ]


def rollup_select(settings: InfluxSettings, rollup: Rollup, measurement: str, time_range: str = "") -> str:
    """The `SELECT ... INTO` of one rollup level and measurement (a CQ's body, or run by hand with a range).

    Args:
        settings: the database.
        rollup: the level.
        measurement: a key of `ROLLED_UP`.
        time_range: `WHERE` condition on time, empty inside a CQ (the CQ supplies its own).
    """
    db = quote_ident(settings.database)
    m = quote_ident(measurement)
    where = f" WHERE {time_range}" if time_range else ""
    return (f"SELECT {aggregate_select(ROLLED_UP[measurement])} INTO {db}.{quote_ident(rollup.rp)}.{m} "
            f"FROM {db}.{quote_ident(rollup.source_rp)}.{m}{where} GROUP BY time({rollup.interval_s}s), *")


def cq_name(rollup: Rollup, measurement: str) -> str:
    return f"sp_{measurement}_{rollup.source}"


def continuous_queries(settings: InfluxSettings) -> dict[str, str]:
    """Name -> `CREATE CONTINUOUS QUERY` statement of every rollup.

    Args:
        settings: the database and policies.
    """
    out: dict[str, str] = {}
    for rollup in rollups(settings):
        for measurement in ROLLED_UP:
            name = cq_name(rollup, measurement)
            out[name] = (f"CREATE CONTINUOUS QUERY {quote_ident(name)} ON {quote_ident(settings.database)} "
                         f"RESAMPLE EVERY {rollup.resample_every} FOR {rollup.resample_for} "
                         f"BEGIN {rollup_select(settings, rollup, measurement)} END")
    return out


class SchemaError(RuntimeError):
    """InfluxDB refused a statement of the schema set-up (the message says which and why)."""


async def _run(client: httpx.AsyncClient, settings: InfluxSettings, statement: str) -> dict[str, Any]:
    params = {"q": statement, "db": settings.database}
    if settings.username:
        params["u"] = settings.username
    if settings.password:
        params["p"] = settings.password.get_secret_value()
    try:
        response = await client.post("/query", data=params)
    except httpx.TransportError as exc:
        raise SchemaError(f"InfluxDB at {settings.url} is unreachable ({type(exc).__name__})") from exc
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text.strip()[:500]}
    result: dict[str, Any] = (body.get("results") or [{}])[0]
    error = body.get("error") or result.get("error")
    if response.status_code >= 300 or error:
        raise SchemaError(f"InfluxDB refused {statement[:120]!r}: HTTP {response.status_code} {error or ''}")
    return result


def _rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(zip(s.get("columns", []), row, strict=False))
            for s in result.get("series", []) for row in s.get("values", [])]


async def ensure_schema(client: httpx.AsyncClient, settings: InfluxSettings) -> None:
    """Create (or bring up to date) the database, its retention policies and its continuous queries.

    Idempotent: what already matches is left alone; a policy whose duration or default flag differs is
    altered; a CQ whose definition changed is dropped and created again (InfluxDB cannot alter a CQ);
    CQs of ours (`sp_*`) no longer wanted are dropped. Call it before writing (ingest does at start).

    Args:
        client: an `httpx.AsyncClient` whose base URL is the InfluxDB server.
        settings: database, credentials, policy names and durations.

    Raises:
        SchemaError: InfluxDB is unreachable or refused a statement (e.g. InfluxDB 2/3 compatibility APIs,
            which have buckets instead of retention policies and no continuous queries).
    """
    db = quote_ident(settings.database)
    await _run(client, settings, f"CREATE DATABASE {db}")
    existing = {row["name"]: row for row in _rows(await _run(client, settings, f"SHOW RETENTION POLICIES ON {db}"))}
    for rp in retention_policies(settings):
        default = " DEFAULT" if rp.default else ""
        found = existing.get(rp.name)
        if found is None:
            await _run(client, settings, f"CREATE RETENTION POLICY {quote_ident(rp.name)} ON {db} DURATION "
                                         f"{rp.duration} REPLICATION 1 SHARD DURATION {rp.shard_duration}{default}")
            log.info("created retention policy %s (%s)", rp.name, rp.duration)
        elif influx_duration_s(found["duration"]) != rp.duration_s or bool(found["default"]) != rp.default:
            # Shard duration too: InfluxDB refuses a duration shorter than the policy's shard groups.
            await _run(client, settings, f"ALTER RETENTION POLICY {quote_ident(rp.name)} ON {db} DURATION "
                                         f"{rp.duration} SHARD DURATION {rp.shard_duration}{default}")
            log.info("altered retention policy %s to %s", rp.name, rp.duration)
    wanted = continuous_queries(settings)
    current = {}
    for series in (await _run(client, settings, "SHOW CONTINUOUS QUERIES")).get("series", []):
        if series.get("name") == settings.database:
            current = {row[0]: row[1] for row in series.get("values", [])}
    for name in current:
        if name.startswith("sp_") and name not in wanted:
            await _run(client, settings, f"DROP CONTINUOUS QUERY {quote_ident(name)} ON {db}")
            log.info("dropped continuous query %s", name)
    for name, statement in wanted.items():
        try:
            await _run(client, settings, statement)  # the same definition again is a no-op
        except SchemaError as exc:
            if "already exists" not in str(exc):
                raise
            await _run(client, settings, f"DROP CONTINUOUS QUERY {quote_ident(name)} ON {db}")
            await _run(client, settings, statement)
            log.info("replaced continuous query %s (its definition changed)", name)


async def backfill_rollups(client: httpx.AsyncClient, settings: InfluxSettings, start_ms: int, end_ms: int,
                           *, progress: Callable[[str], None] = lambda _: None) -> dict[str, int]:
    """Roll up [start, end) by hand with the CQs' own `SELECT ... INTO`, 1-minute level first.

    For data the CQs never saw: written before the schema existed, or arriving later than their
    `RESAMPLE FOR`. Rows land on the same timestamps and tags as the CQs', so running it twice is harmless.

    Args:
        client: an `httpx.AsyncClient` whose base URL is the InfluxDB server.
        settings: database and policies.
        start_ms: start of the range (rounded down to the hour).
        end_ms: end of the range (rounded up to the hour).
        progress: called with a line per chunk.

    Returns:
        Rows written per rollup policy.
    """
    written: dict[str, int] = {}
    hour_ms = 3_600_000
    lo, hi = start_ms // hour_ms * hour_ms, -(-end_ms // hour_ms) * hour_ms
    for rollup in rollups(settings):
        chunk_ms = 86_400_000 if rollup.interval_s < 3600 else 30 * 86_400_000  # bounded memory per statement
        total = 0
        for a in range(lo, hi, chunk_ms):
            b = min(a + chunk_ms, hi)
            for measurement in ROLLED_UP:
                result = await _run(client, settings, rollup_select(
                    settings, rollup, measurement, f"time >= {a}ms AND time < {b}ms"))
                total += sum(int(row.get("written") or 0) for row in _rows(result))
            progress(f"{rollup.rp}: {time.strftime('%Y-%m-%d %H:%M', time.gmtime(a / 1000))}Z .. "
                     f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(b / 1000))}Z, {total} rows so far")
        written[rollup.rp] = total
    return written


def _client(settings: InfluxSettings) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=settings.url.rstrip("/"), timeout=httpx.Timeout(max(settings.timeout_s, 60)))


ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="SmartPark YAML config (influx: section)")]


def _settings(config: Path | None) -> InfluxSettings:
    try:
        return load_settings(config).influx
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def setup_command(config: ConfigOpt = None) -> None:
    """Create the database, retention policies (raw, 1-minute and 1-hour rollups) and continuous queries."""
    settings = _settings(config)

    async def run() -> None:
        async with _client(settings) as client:
            await ensure_schema(client, settings)

    try:
        asyncio.run(run())
    except SchemaError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    for rp in retention_policies(settings):
        typer.echo(f"retention policy {rp.name}: {rp.duration}{' (DEFAULT)' if rp.default else ''}")
    for name in continuous_queries(settings):
        typer.echo(f"continuous query {name}")


def backfill_command(
    config: ConfigOpt = None,
    days: Annotated[float, typer.Option(min=0.01, max=3660, help="roll up the last N days")] = 1.0,
) -> None:
    """Roll up the last N days by hand (data the continuous queries never saw: history, late arrivals)."""
    settings = _settings(config)
    end_ms = int(time.time() * 1000)

    async def run() -> dict[str, int]:
        async with _client(settings) as client:
            return await backfill_rollups(client, settings, end_ms - int(days * 86_400_000), end_ms,
                                          progress=typer.echo)

    try:
        written = asyncio.run(run())
    except SchemaError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(", ".join(f"{rp}: {n} rows" for rp, n in written.items()))
