"""Recompute hourly and daily energy, tce, CO2 and new-energy ratio for any range from InfluxDB `telemetry`.

The backfill replays stored telemetry through the very `StreamState` the live service advances, one
Beijing day per batch, and turns every day the state closes into rows of measurement `energy`:

    energy,scope=park|enterprise|device,park=..,enterprise=..,device=..,window=hour|day <fields> <window start>

Fields of park and enterprise rows (kWh by category, then the derived figures, see analytics.aggregate):
grid_import_kwh, grid_export_kwh, generation_kwh, green_supply_kwh, consumed_kwh,
renewable_consumed_kwh, net_purchase_kwh, gas_m3, steam_t, water_m3, tce, co2_kg, co2_scope1_kg,
co2_scope2_kg, new_energy_ratio and carbon_intensity_tco2_per_tce (both omitted when nothing was
consumed), coverage (the lowest share of the window covered by continuous readings over the group's
metered series that reported, 0..1). Device rows carry import_kwh, export_kwh, gas_m3, steam_t,
water_m3 and coverage of the series that reported in the window. Rows are idempotent (same tags and
time), so a backfill can be rerun over any range.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import httpx
import numpy as np

from analytics import influx, kernels
from analytics.aggregate import derive, energy_quantities
from analytics.devices import N_COUNTERS, DeviceIndex
from analytics.factors import Factors, default_factors
from analytics.state import HOURS_PER_DAY, ClosedDay, StateLimits, StreamState, day_start_ms
from parkmodel.registry import Role

log = logging.getLogger(__name__)

BEIJING = timezone(timedelta(hours=8))
ENERGY_MEASUREMENT = "energy"
#: Replay reads this long past the last day, so the steps crossing its midnight are complete.
LEAD_MS = 3600_000
WRITE_BATCH_LINES = 20_000
_GROUP_FIELDS = {
    "grid_import_today_kwh": "grid_import_kwh", "grid_export_today_kwh": "grid_export_kwh",
    "generation_today_kwh": "generation_kwh", "green_supply_today_kwh": "green_supply_kwh",
    "consumed_today_kwh": "consumed_kwh", "renewable_consumed_today_kwh": "renewable_consumed_kwh",
    "net_purchase_today_kwh": "net_purchase_kwh", "gas_today_m3": "gas_m3", "steam_today_t": "steam_t",
    "water_today_m3": "water_m3", "tce_today": "tce", "co2_today_kg": "co2_kg",
    "co2_scope1_today_kg": "co2_scope1_kg", "co2_scope2_today_kg": "co2_scope2_kg",
    "new_energy_ratio_today": "new_energy_ratio", "carbon_intensity_tco2_per_tce": "carbon_intensity_tco2_per_tce",
}
_DEVICE_FIELDS = ("import_kwh", "export_kwh", "gas_m3", "steam_t", "water_m3")
_SUMMED_ROLES = (Role.GRID_METER, Role.GREEN_SUPPLY, Role.PV, Role.WIND, Role.GAS_METER, Role.STEAM_METER,
                 Role.WATER_METER)
_POWER_KEYS = ("pv_kw", "wind_kw", "grid_import_kw", "grid_export_kw", "green_supply_kw", "storage_kw",
               "devices_reporting", "devices_total")


@dataclass(frozen=True, slots=True)
class WindowFigures:
    """Figures of one window for every group.

    Attributes:
        start_ms: window start.
        window: "hour" or "day".
        enterprise: per enterprise, output field name → array over enterprises.
        park: the same over parks.
        device: `(n_devices, N_COUNTERS)` energy per counter field.
        device_coverage: `(n_devices, N_COUNTERS)` covered share (NaN: the series did not report).
    """

    start_ms: int
    window: str
    enterprise: dict[str, np.ndarray]
    park: dict[str, np.ndarray]
    device: np.ndarray
    device_coverage: np.ndarray


def window_figures(index: DeviceIndex, start_ms: int, window: str, energy: np.ndarray, covered_ms: np.ndarray,
                   quality: np.ndarray, width_ms: int, factors: Factors) -> WindowFigures:
    """Aggregate one window's per-series energy device → enterprise → park with the live KPIs' formulas.

    Args:
        index: the device index.
        start_ms: window start.
        window: "hour" or "day".
        energy: per counter series, the window's energy.
        covered_ms: per counter series, time covered by continuous steps.
        quality: per counter series, highest step quality (MISSING: no data).
        width_ms: window width.
        factors: tce and CO2 factors.
    """
    per_device = energy.reshape(index.n_devices, N_COUNTERS)
    reported = (quality != kernels.MISSING).reshape(index.n_devices, N_COUNTERS)
    coverage = np.where(reported, np.minimum(covered_ms.reshape(index.n_devices, N_COUNTERS) / width_ms, 1.0),
                        np.nan)
    n_ent, n_park = len(index.enterprise_ids), len(index.park_ids)
    quantities = energy_quantities(index, per_device)
    zeros = np.zeros(n_ent)
    ent_sums = {k: np.bincount(index.enterprise, v, minlength=n_ent) for k, v in quantities.items()}
    ent_sums |= {k: zeros for k in _POWER_KEYS}
    ent = derive(ent_sums, factors)
    park_sums = {k: np.bincount(index.enterprise_park, v, minlength=n_park) for k, v in ent_sums.items()}
    members = {k: np.bincount(index.enterprise_park, ent[k], minlength=n_park)
               for k in ("renewable_consumed_today_kwh", "net_purchase_today_kwh")}
    park = derive(park_sums, factors, members)
    # Coverage of a group: its least covered series among the connection-point and utility meters that reported.
    counts = index.has_role(*_SUMMED_ROLES)[:, None] & reported
    dev_cov = np.where(counts, coverage, np.inf).min(axis=1)
    ent_cov = np.full(n_ent, np.inf)
    np.minimum.at(ent_cov, index.enterprise, dev_cov)
    park_cov = np.full(n_park, np.inf)
    np.minimum.at(park_cov, index.enterprise_park, ent_cov)
    ent_out = {name: ent[key] for key, name in _GROUP_FIELDS.items()}
    park_out = {name: park[key] for key, name in _GROUP_FIELDS.items()}
    ent_out["coverage"] = np.where(np.isinf(ent_cov), np.nan, ent_cov)
    park_out["coverage"] = np.where(np.isinf(park_cov), np.nan, park_cov)
    return WindowFigures(start_ms, window, ent_out, park_out, per_device, coverage)


def day_figures(index: DeviceIndex, day: ClosedDay, factors: Factors) -> list[WindowFigures]:
    """The 24 hourly windows and the daily window of a closed day."""
    out = [window_figures(index, day.start_ms + h * kernels.HOUR_MS, "hour", day.energy[:, h],
                          day.covered_ms[:, h], day.quality[:, h], kernels.HOUR_MS, factors)
           for h in range(HOURS_PER_DAY)]
    out.append(window_figures(index, day.start_ms, "day", day.energy.sum(axis=1), day.covered_ms.sum(axis=1),
                              day.quality.max(axis=1), kernels.DAY_MS, factors))
    return out


def energy_lines(index: DeviceIndex, fig: WindowFigures, *, devices: bool = False) -> list[str]:
    """Line protocol of one window's figures (device rows only with `devices`)."""
    lines: list[str | None] = []
    for p, pid in enumerate(index.park_ids):
        lines.append(influx.line(ENERGY_MEASUREMENT, {"scope": "park", "park": pid, "window": fig.window},
                                 {k: float(v[p]) for k, v in fig.park.items()}, fig.start_ms))
    for e, eid in enumerate(index.enterprise_ids):
        tags = {"scope": "enterprise", "park": index.park_ids[index.enterprise_park[e]], "enterprise": eid,
                "window": fig.window}
        lines.append(influx.line(ENERGY_MEASUREMENT, tags, {k: float(v[e]) for k, v in fig.enterprise.items()},
                                 fig.start_ms))
    if devices:
        for d, did in enumerate(index.device_ids):
            have = ~np.isnan(fig.device_coverage[d])
            if not have.any():
                continue
            fields: dict[str, float | None] = {name: float(fig.device[d, f])
                                               for f, name in enumerate(_DEVICE_FIELDS) if have[f]}
            fields["coverage"] = float(np.nanmin(fig.device_coverage[d]))
            e = int(index.enterprise[d])
            tags = {"scope": "device", "park": index.park_ids[index.park[d]], "enterprise": index.enterprise_ids[e],
                    "device": did, "window": fig.window}
            lines.append(influx.line(ENERGY_MEASUREMENT, tags, fields, fig.start_ms))
    return [line for line in lines if line is not None]


Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def replay_bounds(start_ms: int, end_ms: int) -> list[int]:
    """Batch edges of a backfill of `[start_ms, end_ms)`: whole Beijing days, then a lead-out hour.

    Batch `k` holds the readings in `[bounds[k], bounds[k+1])` and is folded at `bounds[k+1] - 1`. Before
    them comes the lead-in: each series' last reading before `bounds[0]` (its anchor, however old); the
    lead-out completes the steps that cross the last midnight.
    """
    first_day = day_start_ms(start_ms)
    last_day = day_start_ms(end_ms - 1)
    days = range(first_day, last_day + kernels.DAY_MS + 1, kernels.DAY_MS)
    return [*days, last_day + kernels.DAY_MS + LEAD_MS]


def replay_columns(index: DeviceIndex, cols: Columns, start_ms: int, end_ms: int,
                   limits: StateLimits | None = None) -> list[ClosedDay]:
    """The backfill's computation over readings already in memory: the closed days of `[start_ms, end_ms)`."""
    bounds = replay_bounds(start_ms, end_ms)
    ts = cols[1]
    lead = ts < bounds[0]
    batches = [(bounds[0] - 1, (cols[0][lead], ts[lead], cols[2][lead], cols[3][lead]))]
    for a, z in itertools.pairwise(bounds):
        sel = (ts >= a) & (ts < z)
        batches.append((z - 1, (cols[0][sel], ts[sel], cols[2][sel], cols[3][sel])))
    first, last = day_start_ms(start_ms), day_start_ms(end_ms - 1)
    start = int(ts.min()) if ts.shape[0] else bounds[0]
    return [d for d in replay(index, batches, min(start, bounds[0] - 1), limits) if first <= d.start_ms <= last]


def replay(index: DeviceIndex, batches: list[tuple[int, Columns]], start_ms: int,
           limits: StateLimits | None = None) -> list[ClosedDay]:
    """Advance a fresh `StreamState` through `(now_ms, columns)` batches and return every closed day.

    The backfill feeds one Beijing day per batch; the live service feeds micro-batches as they come.
    Both give the same closed days for the same data (tests/analytics/test_backfill.py).

    Args:
        index: the device index.
        batches: in time order, each the time it is folded at and its `(device, ts, field, value)`.
        start_ms: time the state starts at.
        limits: gap and staleness limits.
    """
    days: list[ClosedDay] = []
    state = StreamState(index, start_ms, limits, on_day_closed=days.append)
    for at, cols in batches:
        state.update(*cols, now_ms=at)
    state.flush_days()
    return days


@dataclass
class BackfillResult:
    """What a backfill did."""

    days: int = 0
    values: int = 0
    lines: int = 0
    figures: list[WindowFigures] = field(default_factory=list)


async def backfill(client: httpx.AsyncClient, database: str, index: DeviceIndex, start_ms: int, end_ms: int, *,
                   factors: Factors | None = None, devices: bool = False, write: bool = True,
                   limits: StateLimits | None = None, keep_figures: bool = False,
                   progress: Callable[[str], None] | None = None) -> BackfillResult:
    """Recompute the Beijing days overlapping `[start_ms, end_ms)` and write their `energy` rows.

    Args:
        client: HTTP client with the InfluxDB base URL.
        database: database holding `telemetry` (and receiving `energy`).
        index: the device index.
        start_ms: first instant (its whole day is recomputed).
        end_ms: end (exclusive; its day is recomputed up to the data there is).
        factors: tce and CO2 factors.
        devices: also write device rows.
        write: write to InfluxDB (False: compute only).
        limits: gap limits (the live service's defaults).
        keep_figures: keep every window's figures in the result (tests, reports).
        progress: called with a progress line per day.

    Raises:
        InfluxError: a query or write failed.
    """
    factors = factors or default_factors()
    first_day = day_start_ms(start_ms)
    last_day = day_start_ms(end_ms - 1)
    result = BackfillResult()
    closed: list[ClosedDay] = []
    pending: list[str] = []
    lead = await influx.read_anchors(client, database, index, first_day)
    start = int(lead[1].min()) if lead[1].shape[0] else first_day - 1
    state = StreamState(index, start, limits, on_day_closed=closed.append)
    state.update(*lead, now_ms=first_day - 1)

    async def emit() -> None:
        for day in closed:
            if not first_day <= day.start_ms <= last_day:
                continue
            result.days += 1
            for fig in day_figures(index, day, factors):
                if keep_figures:
                    result.figures.append(fig)
                pending.extend(energy_lines(index, fig, devices=devices))
        closed.clear()
        if write and len(pending) >= WRITE_BATCH_LINES:
            await influx.write_gzip(client, database, pending)
            result.lines += len(pending)
            pending.clear()

    bounds = replay_bounds(start_ms, end_ms)
    for a, z in itertools.pairwise(bounds):
        cols = await influx.read_telemetry(client, database, index, a - 1, z - 1)  # (a-1, z-1] = [a, z)
        state.update(*cols, now_ms=z - 1)
        result.values += cols[0].shape[0]
        await emit()
        if progress is not None:
            day = datetime.fromtimestamp(a / 1000, BEIJING).date()
            progress(f"backfill {day}: {cols[0].shape[0]} values")
    state.flush_days()
    await emit()
    if write and pending:
        await influx.write_gzip(client, database, pending)
        result.lines += len(pending)
    if not write:
        result.lines = len(pending)
    return result
