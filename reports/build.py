"""Assemble the figures of an enterprise or park report for a period: energy by carrier, CO2 by scope,
new-energy ratio, economic and per-mu figures, the evaluation, targets, the park ranking and the meters behind."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from analytics.factors import Factors
from parkmodel.registry import Enterprise, Park, Registry, Role
from reports.config import EvaluationConfig
from reports.economy import EconomicRecord
from reports.energy import Carbon, PeriodEnergy, Totals, carbon_of, new_energy_ratio, period_energy
from reports.evaluation import EconomySums, Evaluation, Subject, evaluate_enterprises, rank_parks, sum_economy
from reports.periods import Period, parse_period
from reports.store import EconomyStore
from reports.targets import Progress, green_park_progress, new_energy_progress, output_progress, target_in_force

#: Roles whose meters the figures are summed from (sub-meters are shown, never added).
_ROLE_QUANTITY = {
    Role.GRID_METER: ("import_kwh", "export_kwh"), Role.GREEN_SUPPLY: ("import_kwh",), Role.PV: ("export_kwh",),
    Role.WIND: ("export_kwh",), Role.STORAGE: ("import_kwh", "export_kwh"), Role.LOAD_METER: ("import_kwh",),
    Role.GAS_METER: ("gas_m3",), Role.STEAM_METER: ("steam_t",), Role.WATER_METER: ("water_m3",),
}
_USED_FOR = {
    Role.GRID_METER: "grid_import/grid_export", Role.GREEN_SUPPLY: "green_supply", Role.PV: "generation",
    Role.WIND: "generation", Role.STORAGE: "shown only (inside the connection point)",
    Role.LOAD_METER: "sub-meter: shown only, never added", Role.GAS_METER: "gas", Role.STEAM_METER: "steam",
    Role.WATER_METER: "water",
}


@dataclass(frozen=True, slots=True)
class CarrierRow:
    """One energy carrier of a report.

    Attributes:
        key: electricity, gas, steam, water.
        quantity: physical amount.
        unit: kWh, m³, t.
        tce_equivalent: tce (当量值 for electricity; None when the carrier has no coefficient).
        tce_equal_value: tce (等价值 for electricity).
        coefficient: kgce per unit used for 当量值 (and `coefficient_equal_value` for 等价值).
    """

    key: str
    quantity: float
    unit: str
    tce_equivalent: float | None
    tce_equal_value: float | None
    coefficient: float | None
    coefficient_equal_value: float | None


@dataclass(frozen=True, slots=True)
class MeterRow:
    """A meter behind the figures."""

    device: str
    name: str
    role: str
    location: str
    quantities: dict[str, float]
    days: int
    coverage: float | None
    used_for: str


@dataclass(frozen=True, slots=True)
class MonthRow:
    """One month of a multi-month report."""

    month: str
    consumed_kwh: float
    gas_m3: float
    steam_t: float
    water_m3: float
    tce_equivalent: float
    co2_t: float
    new_energy_ratio: float | None
    days: int


@dataclass
class EnergySection:
    """Energy, carbon and new-energy figures of a group over the period."""

    totals: Totals
    carbon: Carbon
    carriers: list[CarrierRow]
    ratio: float | None
    months: list[MonthRow]
    period_days: int


@dataclass
class EnterpriseReport:
    """Everything an enterprise report shows."""

    kind: str
    period: Period
    eval_period: Period
    park: Park
    enterprise: Enterprise
    energy: EnergySection
    economy: EconomySums | None
    economy_records: list[EconomicRecord]
    per_mu: dict[str, float | None]
    evaluation: Evaluation | None
    meters: list[MeterRow]
    meta: dict[str, str]


@dataclass
class ParkReport:
    """Everything a park report shows."""

    kind: str
    period: Period
    eval_period: Period
    park: Park
    energy: EnergySection
    economy: EconomySums | None
    per_mu: dict[str, float | None]
    enterprises: list[tuple[Enterprise, EnergySection, EconomySums | None, Evaluation | None]]
    output: list[Progress]
    new_energy: list[Progress]
    green_park: Progress | None
    ranking: list[Evaluation]
    reward_top: int
    meters: list[MeterRow]
    meta: dict[str, str] = field(default_factory=dict)


def evaluation_period(period: Period) -> Period:
    """The period the 亩均效益 evaluation of a report covers: the year itself, or the 12 months ending with the month."""
    if period.kind == "month":
        y, m = period.last
        return parse_period(f"{y:04d}-{m:02d}/12m")
    return period


def carriers_of(t: Totals, factors: Factors) -> list[CarrierRow]:
    """Energy by carrier with both tce conventions for electricity (factors of analytics.factors)."""
    coal = factors.coal
    water = coal.water.value if coal.water is not None else None
    rows = [("electricity", t.get("consumed_kwh"), "kWh", coal.electricity_equivalent.value,
             coal.electricity_equal_value.value),
            ("gas", t.get("gas_m3"), "m³", coal.natural_gas.value, coal.natural_gas.value),
            ("steam", t.get("steam_t"), "t", coal.steam.value, coal.steam.value),
            ("water", t.get("water_m3"), "m³", water, water)]
    return [CarrierRow(k, q, u, q * a / 1000 if a is not None else None, q * b / 1000 if b is not None else None, a, b)
            for k, q, u, a, b in rows]


def energy_section(energy: PeriodEnergy, scope: str, ident: str, period: Period, factors: Factors) -> EnergySection:
    totals = energy.enterprise(ident) if scope == "enterprise" else energy.park(ident)
    months = []
    by_month = energy.monthly.get((scope, ident), {})
    if period.kind != "month":
        for month in period.months():
            mt = by_month.get(month) or Totals()
            c = carbon_of(mt, factors)
            months.append(MonthRow(month, mt.get("consumed_kwh"), mt.get("gas_m3"), mt.get("steam_t"),
                                    mt.get("water_m3"), c.tce_equivalent, c.co2_t, new_energy_ratio(mt), mt.days))
    return EnergySection(totals, carbon_of(totals, factors), carriers_of(totals, factors), new_energy_ratio(totals),
                         months, period.days)


def park_economy(sums: list[EconomySums]) -> EconomySums | None:
    """A park's economic sums: the sum of its enterprises' (land and employees added up)."""
    if not sums:
        return None

    def opt(values: list[float | None]) -> float | None:
        have = [v for v in values if v is not None]
        return sum(have) if have else None

    return EconomySums(max(s.months for s in sums), sum(s.land_area_mu for s in sums),
                       opt([s.floor_area_m2 for s in sums]), sum(s.output_value for s in sums),
                       sum(s.value_added for s in sums), sum(s.tax_paid for s in sums),
                       opt([s.rd_expense for s in sums]), opt([s.revenue for s in sums]),
                       sum(s.employees for s in sums))


def per_mu(e: EconomySums | None, c: Carbon) -> dict[str, float | None]:
    """Per-mu figures: output, value added, tax (10⁴ yuan/mu), energy (tce/mu, 当量值), CO2 (t/mu)."""
    if e is None or e.land_area_mu <= 0:
        return dict.fromkeys(("output", "value_added", "tax", "tce", "co2", "tce_per_10k_yuan"))
    return {"output": e.output_value / e.land_area_mu, "value_added": e.value_added / e.land_area_mu,
            "tax": e.tax_paid / e.land_area_mu, "tce": c.tce_equivalent / e.land_area_mu,
            "co2": c.co2_t / e.land_area_mu,
            "tce_per_10k_yuan": c.tce_equivalent / e.output_value if e.output_value > 0 else None}


def meters_of(enterprises: list[Enterprise], energy: PeriodEnergy) -> list[MeterRow]:
    """The energy meters of enterprises with their period quantities (safety devices left out)."""
    rows = []
    for ent in enterprises:
        for gw in ent.gateways:
            for dev in gw.devices:
                names = _ROLE_QUANTITY.get(dev.role)
                if names is None:
                    continue
                t = energy.device(dev.id)
                quantities = {n: t.get(n) for n in names} if t is not None else {}
                cov = t.min_coverage if t is not None and t.min_coverage == t.min_coverage else None
                used = _USED_FOR[dev.role] + (f" (under {dev.parent})" if dev.parent else "")
                rows.append(MeterRow(dev.id, dev.name, dev.role.value, dev.location, quantities,
                                     t.days if t is not None else 0, cov, used))
    return rows


@dataclass
class Inputs:
    """Everything loaded once for a report: registry, economy, energy of the period and of the evaluation period."""

    registry: Registry
    period: Period
    eval_period: Period
    energy: PeriodEnergy
    eval_energy: PeriodEnergy
    records: list[EconomicRecord]
    eval_records: list[EconomicRecord]
    factors: Factors
    config: EvaluationConfig
    generated_at_ms: int = field(default_factory=lambda: int(time.time() * 1000))


async def load_inputs(client: httpx.AsyncClient, database: str, registry: Registry, store: EconomyStore,
                      period: Period, factors: Factors, config: EvaluationConfig,
                      energy_mode: str = "auto") -> Inputs:
    """Load the figures a report needs (two energy reads at most, one economy read).

    Raises:
        InfluxError: a query failed.
    """
    eval_period = evaluation_period(period)
    energy = await period_energy(client, database, registry, period, factors, energy_mode)  # type: ignore[arg-type]
    eval_energy = energy if eval_period == period else await period_energy(
        client, database, registry, eval_period, factors, energy_mode)  # type: ignore[arg-type]
    eval_records = [s.record for s in store.records(months=eval_period.months())]
    months = set(period.months())
    return Inputs(registry, period, eval_period, energy, eval_energy,
                  [r for r in eval_records if r.month in months], eval_records, factors, config)


def _sums(records: list[EconomicRecord]) -> dict[str, EconomySums]:
    by: dict[str, list[EconomicRecord]] = {}
    for r in records:
        by.setdefault(r.enterprise, []).append(r)
    return {k: s for k, v in by.items() if (s := sum_economy(v)) is not None}


def evaluate(inp: Inputs) -> dict[str, Evaluation]:
    """The 亩均效益 evaluation of every enterprise of the registry over the evaluation period."""
    sums = _sums(inp.eval_records)
    subjects = []
    for park in inp.registry.parks:
        for ent in park.enterprises:
            t = inp.eval_energy.enterprise(ent.id)
            c = carbon_of(t, inp.factors)
            subjects.append(Subject(ent.id, ent.name, park.id, sums.get(ent.id), c.tce_equal_value, c.co2_t,
                                    t.get("consumed_kwh")))
    return evaluate_enterprises(subjects, inp.config.enterprise)


def park_subjects(inp: Inputs) -> list[Subject]:
    """Every park as a subject of the annual ranking over the evaluation period."""
    sums = _sums(inp.eval_records)
    out = []
    for park in inp.registry.parks:
        econ = park_economy([sums[e.id] for e in park.enterprises if e.id in sums])
        t = inp.eval_energy.park(park.id)
        c = carbon_of(t, inp.factors)
        target = target_in_force(park.output_targets, inp.eval_period.year)
        extra: dict[str, float | None] = {}
        if econ is not None:
            output_yi = econ.output_value / 10_000
            extra["output_progress"] = (output_yi / target.output_value_yi_yuan * 100
                                        if target is not None and target.output_value_yi_yuan else None)
            ratio = new_energy_ratio(t)
            extra["new_energy_ratio"] = ratio * 100 if ratio is not None else None
        out.append(Subject(park.id, park.name, "", econ, c.tce_equal_value, c.co2_t, t.get("consumed_kwh"), extra))
    return out


def _meta(inp: Inputs, source: str) -> dict[str, str]:
    f = inp.factors
    grid = f.grid_kgco2_per_kwh
    return {
        "generated_at_ms": str(inp.generated_at_ms),
        "energy_source": source,
        "electricity_convention": f.electricity_convention,
        "electricity_equivalent": f"{f.coal.electricity_equivalent.value} {f.coal.electricity_equivalent.unit} — "
                                  f"{f.coal.electricity_equivalent.source}",
        "electricity_equal_value": f"{f.coal.electricity_equal_value.value} {f.coal.electricity_equal_value.unit} — "
                                   f"{f.coal.electricity_equal_value.source}",
        "grid_factor": f"{grid.value} {grid.unit} ({f.grid_region}) — {grid.source}",
        "gas_co2": f"{f.fuel_co2.natural_gas.value} {f.fuel_co2.natural_gas.unit} — {f.fuel_co2.natural_gas.source}",
        "steam_co2": (f"{f.heat_co2.steam.value} {f.heat_co2.steam.unit} — {f.heat_co2.steam.source}"
                      if f.heat_co2.steam is not None else "—"),
        "evaluation_revision": inp.config.revision,
        "evaluation_method": f"{inp.config.enterprise.method} — {inp.config.enterprise.method_source}",
        "classes_source": inp.config.enterprise.classes_source,
    }


def enterprise_report(inp: Inputs, enterprise_id: str) -> EnterpriseReport:
    """The report of one enterprise.

    Raises:
        KeyError: the enterprise is not in the registry.
    """
    found = inp.registry.enterprise(enterprise_id)
    if found is None:
        raise KeyError(f"enterprise {enterprise_id!r} is not in the registry")
    park, ent = found
    energy = energy_section(inp.energy, "enterprise", ent.id, inp.period, inp.factors)
    records = sorted((r for r in inp.records if r.enterprise == ent.id), key=lambda r: r.month)
    econ = sum_economy(records)
    evaluation = evaluate(inp).get(ent.id)
    return EnterpriseReport("enterprise", inp.period, inp.eval_period, park, ent, energy, econ, records,
                            per_mu(econ, energy.carbon), evaluation, meters_of([ent], inp.energy),
                            _meta(inp, inp.energy.source))


def park_progress(inp: Inputs, park: Park) -> tuple[list[Progress], list[Progress], Progress | None]:
    """A park's targets against the evaluation period (targets are annual: the year, or the 12 months to the month).

    Returns:
        `(output-value targets, new-energy ratio targets, green-park status)`.
    """
    eval_sums = _sums(inp.eval_records)
    eval_econ = park_economy([eval_sums[e.id] for e in park.enterprises if e.id in eval_sums])
    year = inp.eval_period.year
    output = output_progress(park.output_targets, eval_econ.output_value / 10_000 if eval_econ is not None else None,
                             year)
    ratios: dict[str, float | None] = {"": new_energy_ratio(inp.eval_energy.park(park.id))}
    for target in park.new_energy_targets:
        members = [e.id for e in park.enterprises if target.area and e.area == target.area]
        if members:
            area = Totals()
            area.values = {k: sum(inp.eval_energy.enterprise(m).get(k) for m in members)
                           for k in ("consumed_kwh", "renewable_consumed_kwh")}
            ratios[target.area] = new_energy_ratio(area)
    return output, new_energy_progress(park.new_energy_targets, ratios, year), green_park_progress(park, year)


def park_report(inp: Inputs, park_id: str, visible: Callable[[Enterprise], bool] | None = None) -> ParkReport:
    """The report of one park.

    Args:
        inp: loaded inputs.
        park_id: the park.
        visible: enterprises to list individually (default: all).

    Raises:
        KeyError: the park is not in the registry.
    """
    park = inp.registry.park(park_id)
    if park is None:
        raise KeyError(f"park {park_id!r} is not in the registry")
    energy = energy_section(inp.energy, "park", park.id, inp.period, inp.factors)
    sums = _sums(inp.records)
    evaluations = evaluate(inp)
    rows = []
    for ent in park.enterprises:
        if visible is None or visible(ent):
            rows.append((ent, energy_section(inp.energy, "enterprise", ent.id, inp.period, inp.factors),
                         sums.get(ent.id), evaluations.get(ent.id)))
    econ = park_economy([sums[e.id] for e in park.enterprises if e.id in sums])
    output, new_energy, green = park_progress(inp, park)
    ranking = rank_parks(park_subjects(inp), inp.config.park)
    return ParkReport("park", inp.period, inp.eval_period, park, energy, econ, per_mu(econ, energy.carbon), rows,
                      output, new_energy, green, ranking, inp.config.park.reward_top,
                      meters_of(park.enterprises, inp.energy), _meta(inp, inp.energy.source))
