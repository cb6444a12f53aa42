"""A small registry whose every figure the tests work out by hand: park p1 (enterprises e1..e4, one in the
zero-carbon area), park p2 (e5), park p3 (no enterprises)."""

from __future__ import annotations

from parkmodel.registry import Registry, parse_registry
from reports.economy import EconomicRecord
from reports.energy import PeriodEnergy

DAY_2026_06_01 = 1_780_243_200_000  # 2026-06-01 00:00 UTC+8


def hand_registry(uid: str) -> Registry:
    def ent(n: int, park: str, land: float, area: str = "") -> dict[str, object]:
        return {"id": f"{park}-e{n}", "name": f"企业{n}", "name_en": f"Enterprise {n}", "land_area_mu": land,
                "area": area, "gateways": [{"id": f"{park}-g{n}", "devices": [
                    {"id": f"{park}-m{n}", "role": "grid_meter", "template": "acrel_dtsd1352", "name": "关口表",
                     "location": "配电室"},
                    {"id": f"{park}-gas{n}", "role": "gas_meter", "template": "gas_flowmeter_f64"}]}]}

    p1, p2, p3 = f"p1{uid}", f"p2{uid}", f"p3{uid}"
    return parse_registry({"version": 1, "parks": [
        {"id": p1, "name": "一号园区", "output_targets": [{"year": 2025, "output_value_yi_yuan": 10},
                                                      {"year": 2026, "output_value_yi_yuan": 20}],
         "new_energy_targets": [{"year": 2026, "ratio": 0.5, "area": "零碳区"}, {"year": 2027, "ratio": 0.1}],
         "green_park_target_year": 2027,
         "enterprises": [ent(1, p1, 100, "零碳区"), ent(2, p1, 200), ent(3, p1, 50), ent(4, p1, 150)]},
        {"id": p2, "name": "二号园区", "green_park": True,
         "output_targets": [{"year": 2026, "output_value_yi_yuan": 5}], "enterprises": [ent(5, p2, 100)]},
        {"id": p3, "name": "三号园区", "output_targets": [{"year": 2026, "output_value_yi_yuan": 3}]},
    ]})


# (enterprise n, land mu, output, value added, tax, R&D, revenue, employees) in 10⁴ yuan; e1 reports two months.
ECONOMY = {
    1: [("2026-05", 100, 20_000, 4_000, 800, 200, 16_000, 180), ("2026-06", 100, 30_000, 6_000, 1_200, 300, 24_000, 220)],
    2: [("2026-06", 200, 60_000, 12_000, 1_500, 300, None, 400)],
    3: [("2026-06", 50, 10_000, 2_500, 800, None, None, 100)],
    4: [("2026-06", 150, 20_000, 3_000, 300, 100, 20_000, 300)],
    5: [("2026-06", 100, 30_000, 6_000, 1_200, 600, 30_000, 150)],
}
# Measured over the period (kWh, m³, t): consumed, net purchase, renewable consumed, gas, steam.
ENERGY = {
    1: (1_000_000, 800_000, 200_000, 10_000, 0),
    2: (2_000_000, 2_000_000, 0, 0, 100),
    3: (500_000, 500_000, 0, 5_000, 0),
    4: (1_500_000, 1_500_000, 0, 0, 0),
    5: (600_000, 300_000, 300_000, 0, 0),
}


def records(uid: str) -> list[EconomicRecord]:
    out = []
    for n, rows in ECONOMY.items():
        park = f"p2{uid}" if n == 5 else f"p1{uid}"
        for month, land, output, va, tax, rd, revenue, employees in rows:
            out.append(EconomicRecord(f"{park}-e{n}", month, land_area_mu=land, output_value_10k_yuan=output,
                                      value_added_10k_yuan=va, tax_paid_10k_yuan=tax, employees=employees,
                                      rd_expense_10k_yuan=rd, revenue_10k_yuan=revenue))
    return out


def energy(uid: str) -> PeriodEnergy:
    """The period's energy as analytics' daily rows would give it (one day row per group)."""
    out = PeriodEnergy(source="stored")
    parks: dict[str, dict[str, float]] = {}
    for n, (consumed, net, renewable, gas, steam) in ENERGY.items():
        park = f"p2{uid}" if n == 5 else f"p1{uid}"
        fields = {"consumed_kwh": consumed, "net_purchase_kwh": net, "renewable_consumed_kwh": renewable,
                  "grid_import_kwh": net, "green_supply_kwh": renewable, "gas_m3": gas, "steam_t": steam,
                  "coverage": 1.0}
        out.add_row("enterprise", f"{park}-e{n}", DAY_2026_06_01, fields)
        out.add_row("device", f"{park}-m{n}", DAY_2026_06_01, {"import_kwh": net, "coverage": 1.0})
        sums = parks.setdefault(park, {})
        for k, v in fields.items():
            sums[k] = sums.get(k, 0.0) + v if k != "coverage" else 1.0
    for park, fields in parks.items():
        out.add_row("park", park, DAY_2026_06_01, fields)
    return out
