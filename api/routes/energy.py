"""Energy KPIs of a device, an enterprise or a park over today, a month, a year or a custom range.

The figures come from the analytics core through `reports.energy.period_energy`: the daily rows of measurement
`energy` written by `smartpark analytics backfill` where they exist, else the same computation replayed over
`telemetry`. Today (since 00:00 Beijing time) is always replayed from telemetry, so a range reaching into today
is complete up to now even when the backfill ran yesterday. Figures are per whole Beijing day: a custom range is
widened to 00:00 Beijing time at both ends and the response says which range was used.

Scoping is `api.deps`': an enterprise caller sees its own enterprise and devices only (others answer 404),
park figures are for operations and admins, emergency management never sees energy data (403).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal, cast

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from analytics.aggregate import derive
from analytics.factors import Factors
from analytics.kernels import BEIJING_OFFSET_MS, DAY_MS
from analytics.state import day_start_ms
from api.auth.principal import Role
from api.csvexport import BEIJING, CSV_RESPONSES, Format, csv_response
from api.deps import CallerDep, EnterpriseKpiDep, IdPath, InfluxDep, ParkKpiDep, RegistryDep
from api.errors import forbidden, invalid
from api.influx import InfluxReader, open_client
from api.queries import parse_time
from parkmodel.registry import DeviceRef, Registry
from reports.build import carriers_of
from reports.energy import PeriodEnergy, Totals, carbon_of, new_energy_ratio, period_energy
from reports.periods import Period, PeriodError, month_start_ms, parse_period
from smartpark.config import InfluxSettings

router = APIRouter(tags=["energy"])

#: The longest custom range (days) answered from stored daily rows.
MAX_RANGE_DAYS = 732
#: The longest range (days) replayed from telemetry (every reading of it is read and folded).
MAX_REPLAY_DAYS = 400
#: Times the store answers for (InfluxDB stops in 2262; a negative day start is no meter reading).
EARLIEST_MS, LATEST_MS = DAY_MS, 4_102_444_800_000
_POWER_KEYS = ("pv_kw", "wind_kw", "grid_import_kw", "grid_export_kw", "green_supply_kw", "storage_kw")
# Which counter of a device feeds which summed category (analytics.aggregate.energy_quantities).
_DEVICE_CATEGORY: dict[str, dict[str, str]] = {
    "grid_meter": {"grid_import_kwh": "import_kwh", "grid_export_kwh": "export_kwh"},
    # As if it were the only meter: a sub-meter's import is what it consumed, bought from the grid; a storage
    # unit's charge is an import and its discharge an export (consumed = its losses).
    "load_meter": {"grid_import_kwh": "import_kwh"},
    "storage": {"grid_import_kwh": "import_kwh", "grid_export_kwh": "export_kwh"},
    "pv": {"generation_kwh": "export_kwh"},
    "wind": {"generation_kwh": "export_kwh"},
    "green_supply": {"green_supply_kwh": "import_kwh"},
    "gas_meter": {"gas_m3": "gas_m3"},
    "steam_meter": {"steam_t": "steam_t"},
    "water_meter": {"water_m3": "water_m3"},
}

PeriodQ = Annotated[str | None, Query(
    max_length=16, description="today (default), month, year (Beijing time, up to now), YYYY-MM or YYYY")]
StartQ = Annotated[str | None, Query(max_length=40, description="custom range start: ISO 8601 with offset, or epoch ms")]
EndQ = Annotated[str | None, Query(max_length=40, description="custom range end (exclusive; default now)")]
TceQ = Annotated[Literal["equivalent", "equal_value"], Query(
    description="electricity's standard-coal coefficient: equivalent (当量值, default) or equal_value (等价值)")]
FormatQ = Annotated[Format, Query(description="json, or csv for a download")]


class ElectricityKwh(BaseModel):
    grid_import: float = Field(description="bought from the grid")
    grid_export: float = Field(description="fed into the grid")
    generation: float = Field(description="on-site PV and wind")
    green_supply: float = Field(description="green power by direct supply")
    consumed: float = Field(description="import + green supply + generation − export")
    renewable_consumed: float = Field(description="green supply + generation not exported")
    net_purchase: float = Field(description="import − export, floored at 0 per enterprise")


class TcePublic(BaseModel):
    convention: Literal["equivalent", "equal_value"]
    total: float = Field(description="tce of every carrier")
    by_carrier: dict[str, float | None] = Field(description="electricity, gas, steam, water (None: no coefficient)")


class Co2Public(BaseModel):
    total_t: float
    scope1_t: float = Field(description="fuel burnt on site (natural gas)")
    scope2_t: float = Field(description="purchased electricity (net purchase) and steam")


class CoveragePublic(BaseModel):
    source: Literal["stored", "telemetry", "mixed", "none"] = Field(
        description="stored rows of `energy`, replayed telemetry, both (stored days + today) or no data")
    days: int = Field(description="Beijing days in the range (today counts as one)")
    days_with_data: int
    min_daily_coverage: float | None = Field(
        description="lowest share of a day covered by continuous readings (today: of the whole day)")


class EnergyPublic(BaseModel):
    """Energy KPIs of one scope over one range."""

    scope: Literal["device", "enterprise", "park"]
    park: str
    enterprise: str | None = None
    device: str | None = None
    role: str | None = Field(default=None, description="device role (device scope)")
    period: str = Field(description="today, month, year, YYYY-MM, YYYY or custom")
    start: int = Field(description="range start, epoch ms (00:00 Beijing time)")
    end: int = Field(description="range end, exclusive, epoch ms")
    electricity_kwh: ElectricityKwh
    gas_m3: float
    steam_t: float
    water_m3: float
    meter: dict[str, float] | None = Field(default=None, description="the device's own counters over the range")
    tce: TcePublic
    co2: Co2Public
    new_energy_ratio: float | None = Field(description="renewable consumed ÷ consumed; None when nothing consumed")
    coverage: CoveragePublic


@dataclass(frozen=True, slots=True)
class DayRange:
    """Whole Beijing days `[start_ms, end_ms)`; has what `period_energy` reads of a `Period`."""

    start_ms: int
    end_ms: int
    label: str


@dataclass(frozen=True, slots=True)
class Span:
    """The range asked for: its label, whole-day bounds and where today begins."""

    label: str
    start_ms: int
    end_ms: int
    now_ms: int

    @property
    def days(self) -> int:
        return max(0, -(-(min(self.end_ms, self.now_ms) - self.start_ms) // DAY_MS))


def _beijing_today(now_ms: int) -> tuple[int, int]:
    d = datetime.fromtimestamp((now_ms + BEIJING_OFFSET_MS) / 1000, UTC)
    return d.year, d.month


def resolve_span(period: str | None, start: str | None, end: str | None, now_ms: int) -> Span:
    """The range of `period` or `start`/`end` (default: today), widened to whole Beijing days.

    Args:
        period: today, month, year, YYYY-MM or YYYY.
        start: custom start (ISO 8601 with an offset, or epoch ms).
        end: custom end, exclusive (default now).
        now_ms: the current time.

    Raises:
        ApiError: invalid_request naming the parameter.
    """
    today = day_start_ms(now_ms)
    if period is not None and (start is not None or end is not None):
        raise invalid("give either period or start/end, not both", "period")
    if start is None and end is not None:
        raise invalid("end needs a start", "start")
    if start is not None:
        start_ms = parse_time(start, "start")
        end_ms = parse_time(end, "end") if end is not None else now_ms
        if end_ms <= start_ms:
            raise invalid("end must be after start", "end")
        for name, ms in (("start", start_ms), ("end", end_ms)):
            if not EARLIEST_MS <= ms <= LATEST_MS:
                raise invalid(f"{name} must lie between 1970-01-02 and 2100-01-01", name)
        first, last = day_start_ms(start_ms), day_start_ms(end_ms - 1) + DAY_MS
        if (last - first) // DAY_MS > MAX_RANGE_DAYS:
            raise invalid(f"a custom range is at most {MAX_RANGE_DAYS} days", "end")
        return Span("custom", first, last, now_ms)
    text = (period or "today").strip()
    year, month = _beijing_today(now_ms)
    if text == "today":
        return Span("today", today, today + DAY_MS, now_ms)
    if text == "month":
        return Span("month", month_start_ms(year, month), month_start_ms(year, month + 1), now_ms)
    if text == "year":
        return Span("year", month_start_ms(year, 1), month_start_ms(year + 1, 1), now_ms)
    try:
        parsed: Period = parse_period(text)
    except PeriodError as exc:
        raise invalid(f"{exc}; or today, month, year", "period") from None
    if parsed.kind == "rolling" or not 1971 <= parsed.first[0] <= 2099:
        raise invalid(f"period {text!r}: expected today, month, year, YYYY-MM or YYYY", "period")
    return Span(parsed.label, parsed.start_ms, parsed.end_ms, now_ms)


def _merge(a: Totals | None, b: Totals | None) -> Totals:
    out = Totals()
    for t in (a, b):
        if t is None:
            continue
        for k, v in t.values.items():
            out.values[k] = out.values.get(k, 0.0) + v
        out.days += t.days
        if not math.isnan(t.min_coverage):
            out.min_coverage = t.min_coverage if math.isnan(out.min_coverage) else min(out.min_coverage, t.min_coverage)
    return out


@dataclass
class SpanEnergy:
    """Past days (stored or replayed) and today (replayed) of a span."""

    past: PeriodEnergy | None
    today: PeriodEnergy | None

    @property
    def source(self) -> Literal["stored", "telemetry", "mixed", "none"]:
        sources = {e.source for e in (self.past, self.today) if e is not None and e.source != "none"}
        if not sources:
            return "none"
        if len(sources) == 1:
            return cast(Literal["stored", "telemetry"], sources.pop())
        return "mixed"

    def totals(self, scope: str, ident: str) -> Totals:
        def of(e: PeriodEnergy | None) -> Totals | None:
            if e is None:
                return None
            return {"park": e.parks, "enterprise": e.enterprises, "device": e.devices}[scope].get(ident)
        return _merge(of(self.past), of(self.today))

    def has_device_rows(self) -> bool:
        return self.past is None or self.past.source != "stored" or bool(self.past.devices)


def _factors(request: Request) -> Factors:
    return cast(Factors, request.app.state.energy_factors)  # loaded in the app's lifespan


def scope_registry(registry: Registry, park: str, enterprise: str | None = None, device: str | None = None
                   ) -> Registry:
    """The part of `registry` a replay needs for one park, one enterprise or one device (ids unchanged).

    Args:
        registry: the registry in force.
        park: the park.
        enterprise: only this enterprise of it.
        device: only this device of the enterprise.
    """
    parks = []
    for p in registry.parks:
        if p.id != park:
            continue
        ents = []
        for e in p.enterprises:
            if enterprise is not None and e.id != enterprise:
                continue
            gateways = [g if device is None else g.model_copy(update={"devices": [d for d in g.devices
                                                                                  if d.id == device]})
                        for g in e.gateways]
            ents.append(e.model_copy(update={"gateways": gateways}))
        parks.append(p.model_copy(update={"enterprises": ents}))
    # No revalidation: a device kept without its parent meter is fine for a replay, not for a registry file.
    return registry.model_copy(update={"parks": parks})


def _replay(settings: InfluxSettings, devices: Registry, period: DayRange, factors: Factors) -> PeriodEnergy:
    """Recompute `period` from telemetry for `devices` (blocking: the numba replay runs in a worker thread with
    an event loop and InfluxDB client of its own, so the app's loop keeps serving)."""
    async def run() -> PeriodEnergy:
        async with open_client(settings) as client:
            return await period_energy(client, settings.database, devices, period, factors, "telemetry")
    return asyncio.run(run())


async def _span_energy(influx: InfluxReader, factors: Factors, devices: Registry, span: Span,
                       past_mode: Literal["auto", "telemetry"] = "auto") -> SpanEnergy:
    today = day_start_ms(span.now_ms)
    out = SpanEnergy(None, None)
    with influx.errors():
        if span.start_ms < min(span.end_ms, today):
            past = DayRange(span.start_ms, min(span.end_ms, today), span.label)
            if past_mode == "auto":
                out.past = await period_energy(influx.client, influx.database, devices, past, factors, "stored")
            if out.past is None or out.past.source == "none":
                days = (past.end_ms - past.start_ms) // DAY_MS
                if days > MAX_REPLAY_DAYS:
                    raise invalid(f"{days} days without stored energy rows: a replay from telemetry covers at most "
                                  f"{MAX_REPLAY_DAYS} days; store the daily rows first with `smartpark analytics "
                                  "backfill` (or ask for a shorter range)", "start")
                out.past = await asyncio.to_thread(_replay, influx.settings, devices, past, factors)
        if span.start_ms <= today < span.end_ms:
            now = DayRange(today, today + DAY_MS, "today")
            out.today = await asyncio.to_thread(_replay, influx.settings, devices, now, factors)
    return out


def _coverage(span: Span, energy: SpanEnergy, t: Totals) -> CoveragePublic:
    cov = None if math.isnan(t.min_coverage) else round(t.min_coverage, 6)
    return CoveragePublic(source=energy.source if t.days else "none", days=span.days, days_with_data=t.days,
                          min_daily_coverage=cov)


def _group_figures(t: Totals, factors: Factors, tce: str) -> dict[str, object]:
    c = carbon_of(t, factors)
    carriers = carriers_of(t, factors)
    by_carrier = {r.key: (r.tce_equivalent if tce == "equivalent" else r.tce_equal_value) for r in carriers}
    return {
        "electricity_kwh": ElectricityKwh(
            grid_import=t.get("grid_import_kwh"), grid_export=t.get("grid_export_kwh"),
            generation=t.get("generation_kwh"), green_supply=t.get("green_supply_kwh"),
            consumed=t.get("consumed_kwh"), renewable_consumed=t.get("renewable_consumed_kwh"),
            net_purchase=t.get("net_purchase_kwh")),
        "gas_m3": t.get("gas_m3"), "steam_t": t.get("steam_t"), "water_m3": t.get("water_m3"),
        "tce": TcePublic(convention=tce,  # type: ignore[arg-type]
                         total=c.tce_equivalent if tce == "equivalent" else c.tce_equal_value,
                         by_carrier=by_carrier),
        "co2": Co2Public(total_t=c.co2_t, scope1_t=c.scope1_t, scope2_t=c.scope2_t),
        "new_energy_ratio": new_energy_ratio(t),
    }


def device_totals(role: str, meter: Totals, factors: Factors) -> Totals:
    """A device's contribution to its enterprise as group quantities, completed with analytics.aggregate.derive
    (consumed, renewable consumed, net purchase) as if it were the enterprise's only meter.

    Args:
        role: the device role.
        meter: the device's counters over the range (import_kwh, export_kwh, gas_m3, steam_t, water_m3).
        factors: tce and CO2 factors.
    """
    mapping = _DEVICE_CATEGORY.get(role, {})
    sums = {k: np.zeros(1) for k in _POWER_KEYS}
    for key in ("grid_import", "grid_export", "generation", "green_supply"):
        sums[f"{key}_today_kwh"] = np.array([meter.get(mapping[f"{key}_kwh"]) if f"{key}_kwh" in mapping else 0.0])
    for key in ("gas_m3", "steam_t", "water_m3"):
        sums[key.replace("_", "_today_", 1)] = np.array([meter.get(mapping[key]) if key in mapping else 0.0])
    derived = derive(sums, factors)
    out = Totals(days=meter.days, min_coverage=meter.min_coverage)
    names = {"grid_import_today_kwh": "grid_import_kwh", "grid_export_today_kwh": "grid_export_kwh",
             "generation_today_kwh": "generation_kwh", "green_supply_today_kwh": "green_supply_kwh",
             "consumed_today_kwh": "consumed_kwh", "renewable_consumed_today_kwh": "renewable_consumed_kwh",
             "net_purchase_today_kwh": "net_purchase_kwh", "gas_today_m3": "gas_m3", "steam_today_t": "steam_t",
             "water_today_m3": "water_m3"}
    out.values = {name: float(derived[key][0]) for key, name in names.items()}
    return out


def _csv(item: EnergyPublic) -> Response:
    def local(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, BEIJING).isoformat(timespec="seconds")

    row: dict[str, object] = {
        "scope": item.scope, "park": item.park, "enterprise": item.enterprise, "device": item.device,
        "role": item.role, "period": item.period, "start": local(item.start), "end": local(item.end),
        **{f"{k}_kwh": v for k, v in item.electricity_kwh.model_dump().items()},
        "gas_m3": item.gas_m3, "steam_t": item.steam_t, "water_m3": item.water_m3,
        "tce_convention": item.tce.convention, "tce": item.tce.total,
        **{f"tce_{k}": v for k, v in item.tce.by_carrier.items()},
        "co2_t": item.co2.total_t, "co2_scope1_t": item.co2.scope1_t, "co2_scope2_t": item.co2.scope2_t,
        "new_energy_ratio": item.new_energy_ratio, "source": item.coverage.source, "days": item.coverage.days,
        "days_with_data": item.coverage.days_with_data, "min_daily_coverage": item.coverage.min_daily_coverage,
    }
    ident = item.device or item.enterprise or item.park
    return csv_response(list(row), [row], f"{ident}-energy-{item.period}.csv")


def _answer(item: EnergyPublic, format: Format) -> EnergyPublic | Response:
    return _csv(item) if format is Format.CSV else item


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def _energy_device(access: CallerDep, device_id: Annotated[str, IdPath]) -> DeviceRef:
    if access.role is Role.EMERGENCY:
        raise forbidden("emergency management does not see energy data")
    return access.device(device_id)


EnergyDeviceDep = Annotated[DeviceRef, Depends(_energy_device)]


@router.get("/parks/{park_id}/energy", response_model=EnergyPublic, responses=CSV_RESPONSES)
async def park_energy(request: Request, park: ParkKpiDep, registry: RegistryDep, influx: InfluxDep,
                      period: PeriodQ = None,
                      start: StartQ = None, end: EndQ = None, tce: TceQ = "equivalent",
                      format: FormatQ = Format.JSON) -> EnergyPublic | Response:
    """A park's energy by carrier and category, tce, CO2 by scope, new-energy ratio and data coverage over
    today (default), this month or year (up to now), a month, a year or a custom range (operations, admins)."""
    span = resolve_span(period, start, end, _now_ms())
    factors = _factors(request)
    energy = await _span_energy(influx, factors, scope_registry(registry, park.id), span)
    t = energy.totals("park", park.id)
    item = EnergyPublic(scope="park", park=park.id, period=span.label, start=span.start_ms, end=span.end_ms,
                        coverage=_coverage(span, energy, t), **_group_figures(t, factors, tce))  # type: ignore[arg-type]
    return _answer(item, format)


@router.get("/enterprises/{enterprise_id}/energy", response_model=EnergyPublic, responses=CSV_RESPONSES)
async def enterprise_energy(request: Request, found: EnterpriseKpiDep, registry: RegistryDep, influx: InfluxDep,
                            period: PeriodQ = None,
                            start: StartQ = None, end: EndQ = None, tce: TceQ = "equivalent",
                            format: FormatQ = Format.JSON) -> EnergyPublic | Response:
    """An enterprise's energy KPIs over a range, like the park's (the enterprise itself, operations, admins)."""
    park, ent = found
    span = resolve_span(period, start, end, _now_ms())
    factors = _factors(request)
    energy = await _span_energy(influx, factors, scope_registry(registry, park.id, ent.id), span)
    t = energy.totals("enterprise", ent.id)
    item = EnergyPublic(scope="enterprise", park=park.id, enterprise=ent.id, period=span.label, start=span.start_ms,
                        end=span.end_ms, coverage=_coverage(span, energy, t),
                        **_group_figures(t, factors, tce))  # type: ignore[arg-type]
    return _answer(item, format)


@router.get("/devices/{device_id}/energy", response_model=EnergyPublic, responses=CSV_RESPONSES)
async def device_energy(request: Request, ref: EnergyDeviceDep, registry: RegistryDep, influx: InfluxDep,
                        period: PeriodQ = None,
                        start: StartQ = None, end: EndQ = None, tce: TceQ = "equivalent",
                        format: FormatQ = Format.JSON) -> EnergyPublic | Response:
    """A meter's own counters over a range and what they contribute to its enterprise (by category, tce, CO2
    as if it were the only meter). Stored rows without device rows are replayed from telemetry."""
    span = resolve_span(period, start, end, _now_ms())
    factors = _factors(request)
    devices = scope_registry(registry, ref.park.id, ref.enterprise.id, ref.device.id)
    energy = await _span_energy(influx, factors, devices, span)
    if not energy.has_device_rows():  # the backfill ran without --devices: replay those days
        energy = await _span_energy(influx, factors, devices, span, past_mode="telemetry")
    meter = energy.totals("device", ref.device.id)
    role = ref.device.role.value
    t = device_totals(role, meter, factors)
    item = EnergyPublic(scope="device", park=ref.park.id, enterprise=ref.enterprise.id, device=ref.device.id,
                        role=role, period=span.label, start=span.start_ms, end=span.end_ms,
                        meter=dict(meter.values), coverage=_coverage(span, energy, meter),
                        **_group_figures(t, factors, tce))  # type: ignore[arg-type]
    return _answer(item, format)

