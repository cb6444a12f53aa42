"""Measured energy of a period per enterprise, park and meter, from the analytics core.

The figures are the daily rows of measurement `energy` that `smartpark analytics backfill` (analytics.backfill)
writes; where a period has none, the same computation runs in memory over `telemetry` (analytics.backfill with
`write=False`), so a report never depends on a form for energy. tce and CO2 are recomputed from the period's
quantities with analytics.aggregate.carbon and the factor set in force (both are linear in the daily
quantities, so the result equals the sum of daily figures computed with the same factors).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

import httpx
import numpy as np

from analytics.aggregate import carbon
from analytics.backfill import ENERGY_MEASUREMENT, backfill
from analytics.devices import DeviceIndex, build_index
from analytics.factors import Factors
from analytics.influx import InfluxError
from parkmodel.registry import Registry
from reports.periods import BEIJING_OFFSET_MS

log = logging.getLogger(__name__)

#: Summed quantities of enterprise and park rows (analytics.backfill's field names).
GROUP_QUANTITIES: tuple[str, ...] = (
    "grid_import_kwh", "grid_export_kwh", "generation_kwh", "green_supply_kwh", "consumed_kwh",
    "renewable_consumed_kwh", "net_purchase_kwh", "gas_m3", "steam_t", "water_m3",
)
#: Quantities of device rows.
DEVICE_QUANTITIES: tuple[str, ...] = ("import_kwh", "export_kwh", "gas_m3", "steam_t", "water_m3")
Source = Literal["stored", "telemetry", "none"]


class PeriodLike(Protocol):
    """What the readers below use of a `reports.periods.Period` (the API passes its own day ranges)."""

    @property
    def start_ms(self) -> int: ...

    @property
    def end_ms(self) -> int: ...

    @property
    def label(self) -> str: ...


@dataclass
class Totals:
    """Quantities of one group (or meter) over a period.

    Attributes:
        values: quantity name → sum over the days that have a row.
        days: days with a row.
        min_coverage: the lowest daily coverage (share of the day covered by continuous readings), NaN if none.
    """

    values: dict[str, float] = field(default_factory=dict)
    days: int = 0
    min_coverage: float = float("nan")

    def add(self, fields: dict[str, float], names: tuple[str, ...]) -> None:
        for name in names:
            v = fields.get(name)
            if v is not None and np.isfinite(v):
                self.values[name] = self.values.get(name, 0.0) + float(v)
        self.days += 1
        cov = fields.get("coverage")
        if cov is not None and np.isfinite(cov):
            self.min_coverage = float(cov) if np.isnan(self.min_coverage) else min(self.min_coverage, float(cov))

    def get(self, name: str) -> float:
        return self.values.get(name, 0.0)


@dataclass(frozen=True, slots=True)
class Carbon:
    """tce (both electricity conventions) and CO2 of a group's quantities.

    Attributes:
        tce_equivalent: tce with electricity at 当量值.
        tce_equal_value: tce with electricity at 等价值.
        co2_t: total CO2, t.
        scope1_t: fuel combustion CO2, t.
        scope2_t: purchased electricity (and steam) CO2, t.
    """

    tce_equivalent: float
    tce_equal_value: float
    co2_t: float
    scope1_t: float
    scope2_t: float


def carbon_of(t: Totals, factors: Factors) -> Carbon:
    """tce and CO2 of period quantities with analytics' own accounting (analytics.aggregate.carbon).

    Args:
        t: the quantities.
        factors: the factor set (its electricity convention is ignored: both are returned).
    """
    q = {"consumed_today_kwh": np.array([t.get("consumed_kwh")]), "gas_today_m3": np.array([t.get("gas_m3")]),
         "steam_today_t": np.array([t.get("steam_t")]), "water_today_m3": np.array([t.get("water_m3")]),
         "net_purchase_today_kwh": np.array([t.get("net_purchase_kwh")])}
    eqv = carbon(q, factors.model_copy(update={"electricity_convention": "equivalent"}))
    eqlv = carbon(q, factors.model_copy(update={"electricity_convention": "equal_value"}))
    return Carbon(float(eqv["tce_today"][0]), float(eqlv["tce_today"][0]), float(eqv["co2_today_kg"][0]) / 1000,
                  float(eqv["co2_scope1_today_kg"][0]) / 1000, float(eqv["co2_scope2_today_kg"][0]) / 1000)


def new_energy_ratio(t: Totals) -> float | None:
    """Renewable consumed ÷ consumed (DESIGN.md), None when nothing was consumed."""
    consumed = t.get("consumed_kwh")
    return None if consumed <= 0 else min(t.get("renewable_consumed_kwh") / consumed, 1.0)


def month_of(day_start_ms: int) -> str:
    """`YYYY-MM` (Beijing time) of a day's start."""
    d = datetime.fromtimestamp((day_start_ms + BEIJING_OFFSET_MS) / 1000, UTC)
    return f"{d.year:04d}-{d.month:02d}"


@dataclass
class PeriodEnergy:
    """Energy of a period: per enterprise, park and device, in total and per month.

    Attributes:
        source: `stored` (rows of measurement `energy`), `telemetry` (recomputed in memory) or `none`.
        enterprises: enterprise id → totals.
        parks: park id → totals.
        devices: device id → totals (empty when stored rows carry no device rows).
        monthly: (scope, id) → month → totals, for enterprise and park scopes.
    """

    source: Source = "none"
    enterprises: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    parks: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    devices: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    monthly: dict[tuple[str, str], dict[str, Totals]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Totals)))

    def enterprise(self, eid: str) -> Totals:
        return self.enterprises.get(eid) or Totals()

    def park(self, pid: str) -> Totals:
        return self.parks.get(pid) or Totals()

    def device(self, did: str) -> Totals | None:
        return self.devices.get(did)

    def add_row(self, scope: str, ident: str, day_ms: int, fields: dict[str, float]) -> None:
        if scope == "device":
            self.devices[ident].add(fields, DEVICE_QUANTITIES)
            return
        target = self.enterprises if scope == "enterprise" else self.parks
        target[ident].add(fields, GROUP_QUANTITIES)
        self.monthly[scope, ident][month_of(day_ms)].add(fields, GROUP_QUANTITIES)


def stored_query(period: PeriodLike) -> str:
    """InfluxQL of the daily `energy` rows of a period."""
    return (f'SELECT * FROM "{ENERGY_MEASUREMENT}" WHERE "window" = \'day\' '
            f"AND time >= {period.start_ms}ms AND time < {period.end_ms}ms")


async def read_stored(client: httpx.AsyncClient, database: str, period: PeriodLike) -> PeriodEnergy:
    """The period's daily rows of measurement `energy` (all scopes).

    Raises:
        InfluxError: the query failed.
    """
    r = await client.post("/query", data={"db": database, "q": stored_query(period), "epoch": "ms"})
    if r.status_code != 200:
        raise InfluxError(f"InfluxDB query on {database!r} failed: HTTP {r.status_code}: {r.text.strip()}")
    out = PeriodEnergy(source="stored")
    for result in r.json().get("results", []):
        if "error" in result:
            if "database not found" in str(result["error"]):
                continue
            raise InfluxError(f"InfluxDB query failed: {result['error']}")
        for series in result.get("series", []):
            cols = series["columns"]
            for row in series["values"]:
                rec = dict(zip(cols, row, strict=False))
                scope = rec.get("scope")
                ident = rec.get({"park": "park", "enterprise": "enterprise", "device": "device"}.get(scope, ""), "")
                if not ident:
                    continue
                fields = {k: float(v) for k, v in rec.items() if isinstance(v, int | float) and k != "time"}
                out.add_row(scope, ident, int(rec["time"]), fields)
    if not out.enterprises and not out.parks:
        out.source = "none"
    return out


async def telemetry_bounds(client: httpx.AsyncClient, database: str, period: PeriodLike) -> tuple[int, int] | None:
    """Times (ms) of the first and last `telemetry` reading inside the period (None: none).

    Raises:
        InfluxError: the query failed.
    """
    where = f"time >= {period.start_ms}ms AND time < {period.end_ms}ms"
    q = (f'SELECT * FROM "telemetry" WHERE {where} ORDER BY time ASC LIMIT 1; '
         f'SELECT * FROM "telemetry" WHERE {where} ORDER BY time DESC LIMIT 1')
    r = await client.post("/query", data={"db": database, "q": q, "epoch": "ms"})
    if r.status_code != 200:
        raise InfluxError(f"InfluxDB query on {database!r} failed: HTTP {r.status_code}: {r.text.strip()}")
    times = []
    for result in r.json().get("results", []):
        if "error" in result:
            if "database not found" in str(result["error"]):
                return None
            raise InfluxError(f"InfluxDB query failed: {result['error']}")
        for series in result.get("series", []):
            times.extend(int(row[0]) for row in series.get("values", []))
    return (min(times), max(times)) if times else None


async def recompute(client: httpx.AsyncClient, database: str, registry: Registry, period: PeriodLike,
                    factors: Factors, index: DeviceIndex | None = None) -> PeriodEnergy:
    """The period's daily figures computed in memory from `telemetry` with analytics.backfill (nothing written).

    Raises:
        InfluxError: a query failed.
    """
    index = index or build_index(registry)
    out = PeriodEnergy(source="none")
    bounds = await telemetry_bounds(client, database, period)
    if bounds is None:
        return out
    # Replay only the days that hold readings: a year with one month of data costs one month.
    result = await backfill(client, database, index, max(period.start_ms, bounds[0]), min(period.end_ms, bounds[1] + 1),
                            factors=factors, devices=True, write=False, keep_figures=True)
    out.source = "telemetry"
    for fig in result.figures:
        if fig.window != "day":
            continue
        for p, pid in enumerate(index.park_ids):
            out.add_row("park", pid, fig.start_ms, {k: float(v[p]) for k, v in fig.park.items()})
        for e, eid in enumerate(index.enterprise_ids):
            out.add_row("enterprise", eid, fig.start_ms, {k: float(v[e]) for k, v in fig.enterprise.items()})
        for d, did in enumerate(index.device_ids):
            have = ~np.isnan(fig.device_coverage[d])
            if have.any():
                fields = {name: float(fig.device[d, f]) for f, name in enumerate(DEVICE_QUANTITIES) if have[f]}
                fields["coverage"] = float(np.nanmin(fig.device_coverage[d]))
                out.add_row("device", did, fig.start_ms, fields)
    if not any(t.days for t in out.enterprises.values()):
        out.source = "none"
    return out


async def period_energy(client: httpx.AsyncClient, database: str, registry: Registry, period: PeriodLike,
                        factors: Factors, mode: Literal["auto", "stored", "telemetry"] = "auto") -> PeriodEnergy:
    """Energy of a period: stored daily rows if there are any (fast), else recomputed from telemetry.

    Args:
        client: HTTP client with the InfluxDB base URL.
        database: database name.
        registry: the devices a recomputation replays: the whole registry, or a part of it (one park, one
            enterprise, one device) when only that part's figures are wanted (stored rows are read whole).
        period: the period (a `Period`, or anything with `start_ms`, `end_ms` and `label`).
        factors: tce and CO2 factors.
        mode: `auto`, or force one source.

    Raises:
        InfluxError: a query failed.
    """
    if mode in ("auto", "stored"):
        stored = await read_stored(client, database, period)
        if stored.source == "stored" or mode == "stored":
            return stored
    log.info("no stored energy rows for %s: recomputing from telemetry", period.label)
    return await recompute(client, database, registry, period, factors)

