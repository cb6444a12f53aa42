"""Plausible monthly economic figures for the demo's enterprises, so the per-mu views are populated.

Output value follows each enterprise's industry and size (its contracted capacity stands in for the energy it
uses: an energy-heavy chemical plant earns less per kWh than a battery maker); value added, tax, R&D and
revenue are industry shares of it, employees follow output. A small deterministic seasonal wave and noise per
enterprise keep months distinct but stable between runs. Written once, as `source="demo"` in the history.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass

from parkmodel.registry import Enterprise, Registry
from reports.economy import EconomicRecord
from reports.periods import BEIJING_OFFSET_MS
from reports.store import EconomyStore, economy_path
from smartpark.config import Settings

log = logging.getLogger(__name__)
DEMO_SOURCE = "demo"
DEMO_USER = "demo"
#: Hours a year the contracted capacity is used at full load (a typical industrial utilisation).
FULL_LOAD_HOURS = 5000


@dataclass(frozen=True, slots=True)
class IndustryProfile:
    """Economic shape of an industry.

    Attributes:
        yuan_per_kwh: output value per kWh consumed, yuan.
        value_added_share: value added ÷ output.
        tax_share: tax paid ÷ output.
        rd_share: R&D expense ÷ revenue.
        output_per_employee: annual output per employee, 10⁴ yuan.
    """

    yuan_per_kwh: float
    value_added_share: float
    tax_share: float
    rd_share: float
    output_per_employee: float


# Orders of magnitude from Chinese industry statistics (energy-intensive chemicals ~ 3–6 yuan/kWh, equipment
# and batteries ~ 15–30 yuan/kWh); illustrative only: demo figures, not data about any real company.
PROFILES: dict[str, IndustryProfile] = {
    "煤化工": IndustryProfile(4.0, 0.24, 0.050, 0.012, 420),
    "氯碱化工": IndustryProfile(3.5, 0.22, 0.045, 0.010, 380),
    "硅材料": IndustryProfile(3.0, 0.26, 0.040, 0.020, 350),
    "冶金": IndustryProfile(3.8, 0.20, 0.035, 0.008, 330),
    "天然气化工": IndustryProfile(5.0, 0.25, 0.055, 0.012, 450),
    "LNG": IndustryProfile(7.0, 0.22, 0.060, 0.008, 500),
    "甲醇": IndustryProfile(4.5, 0.21, 0.045, 0.010, 400),
    "新材料": IndustryProfile(12.0, 0.30, 0.050, 0.035, 260),
    "动力电池": IndustryProfile(18.0, 0.28, 0.040, 0.045, 240),
    "光伏材料": IndustryProfile(9.0, 0.27, 0.040, 0.030, 260),
    "氢能装备": IndustryProfile(25.0, 0.32, 0.045, 0.060, 200),
    "新能源汽车": IndustryProfile(30.0, 0.25, 0.045, 0.040, 220),
}
DEFAULT_PROFILE = IndustryProfile(8.0, 0.25, 0.045, 0.020, 300)


def demo_months(months: int, now_ms: int | None = None) -> list[str]:
    """The `months` complete months before the current one (Beijing time), oldest first."""
    now = (now_ms if now_ms is not None else int(time.time() * 1000)) + BEIJING_OFFSET_MS
    t = time.gmtime(now / 1000)
    y, m = t.tm_year, t.tm_mon
    out = []
    for _ in range(months):
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
        out.append(f"{y:04d}-{m:02d}")
    return out[::-1]


def enterprise_months(ent: Enterprise, months: list[str]) -> list[EconomicRecord]:
    """Monthly figures of one enterprise (deterministic for its id)."""
    profile = PROFILES.get(ent.industry, DEFAULT_PROFILE)
    rng = random.Random(f"smartpark-demo-{ent.id}")
    capacity_kw = ent.contracted_capacity_kw or ent.land_area_mu * 20
    annual_kwh = capacity_kw * FULL_LOAD_HOURS * rng.uniform(0.75, 1.05)
    # 10⁴ yuan a year; an enterprise's own efficiency spreads its per-kWh output around the industry's.
    annual_output = annual_kwh * profile.yuan_per_kwh * rng.uniform(0.7, 1.3) / 10_000
    employees = max(30, round(annual_output / profile.output_per_employee * rng.uniform(0.85, 1.15)))
    floor_area = round(ent.land_area_mu * 666.7 * rng.uniform(0.35, 0.6))
    va_share = profile.value_added_share * rng.uniform(0.85, 1.15)
    tax_share = profile.tax_share * rng.uniform(0.7, 1.3)
    rd_share = profile.rd_share * rng.uniform(0.6, 1.4)
    phase = rng.uniform(0, 2 * math.pi)
    records = []
    for k, month in enumerate(months):
        month_no = int(month[5:])
        season = 1 + 0.08 * math.sin(2 * math.pi * month_no / 12 + phase) - (0.12 if month_no == 2 else 0.0)
        output = annual_output / 12 * season * rng.uniform(0.95, 1.05)
        revenue = output * rng.uniform(0.92, 1.02)
        staff = employees + round(employees * 0.02 * math.sin(k))
        records.append(EconomicRecord(
            ent.id, month, land_area_mu=ent.land_area_mu, floor_area_m2=float(floor_area),
            output_value_10k_yuan=round(output, 1), value_added_10k_yuan=round(output * va_share, 1),
            tax_paid_10k_yuan=round(output * tax_share * rng.uniform(0.9, 1.1), 1),
            rd_expense_10k_yuan=round(revenue * rd_share, 1), revenue_10k_yuan=round(revenue, 1),
            employees=float(staff)))
    return records


def seed_demo_economy(settings: Settings, registry: Registry, months: int = 12, *, now_ms: int | None = None) -> int:
    """Write demo economic figures for every enterprise of the registry, unless the store already has data.

    Args:
        settings: where the store lives (`{var_dir}/economy.sqlite`).
        registry: the enterprises.
        months: how many complete months before the current one.
        now_ms: "now" (tests); default the clock.

    Returns:
        Records written (0 when the store already held data).
    """
    store = EconomyStore(economy_path(settings.var_dir))
    if store.latest_month() is not None:
        log.info("economic data present in %s: demo figures not written", store.path)
        return 0
    span = demo_months(months, now_ms)
    records = [r for park in registry.parks for ent in park.enterprises for r in enterprise_months(ent, span)]
    created, _, _ = store.put_many(records, DEMO_USER, DEMO_SOURCE)
    log.info("demo economic data: %d records (%s to %s) in %s", created, span[0] if span else "-",
             span[-1] if span else "-", store.path)
    return created
