"""Aggregation device → enterprise → park into the KPI dictionaries of the `sp/v1/{park}/kpi` contract.

Only connection-point devices add up: grid meters, green supply, PV, wind and storage. Sub-meters
(`load_meter`) measure part of what the grid meter already measured, so they are never added to it.
Generation, export, storage and green supply are kept apart until the formulas below combine them.

New-energy consumption ratio (DESIGN.md): renewable consumed ÷ total consumed, with
    total consumed     = grid import + green supply + on-site generation − grid export
    renewable consumed = max(on-site generation − grid export, 0) + green supply
i.e. what the enterprise exports to the grid is taken to be on-site generation first. A park's
renewable consumption is the sum of its enterprises' (one enterprise's export does not reduce
another's generation), and its ratio is formed from the park's sums, never averaged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analytics.devices import F_EXPORT, F_GAS, F_IMPORT, F_STEAM, F_WATER, DeviceIndex
from analytics.factors import Factors, default_factors
from analytics.state import StreamState
from parkmodel.registry import Role

#: Keys of a KPI dictionary, in contract order (interfaces.md).
KPI_KEYS: tuple[str, ...] = (
    "load_kw", "generation_kw", "pv_kw", "wind_kw", "grid_import_kw", "grid_export_kw", "green_supply_kw",
    "storage_kw", "consumed_today_kwh", "grid_import_today_kwh", "grid_export_today_kwh", "generation_today_kwh",
    "green_supply_today_kwh", "renewable_consumed_today_kwh", "new_energy_ratio_today", "gas_today_m3",
    "steam_today_t", "water_today_m3", "devices_reporting", "devices_total",
    # Carbon extension (analytics.factors): tce in t, CO2 in kg, intensity in tCO2/tce (null without energy).
    "tce_today", "co2_today_kg", "co2_scope1_today_kg", "co2_scope2_today_kg", "carbon_intensity_tco2_per_tce",
    # Demand extension: last complete 15-minute window's average grid import, the month's maximum of it
    # (both coincident over the group's grid meters; null until known), and the registry's contracted capacity.
    "demand_15min_kw", "max_demand_month_kw", "contracted_capacity_kw",
)
# Quantities summed over devices (everything else is derived from them).
_SUMMED: tuple[str, ...] = (
    "pv_kw", "wind_kw", "grid_import_kw", "grid_export_kw", "green_supply_kw", "storage_kw",
    "grid_import_today_kwh", "grid_export_today_kwh", "generation_today_kwh", "green_supply_today_kwh",
    "gas_today_m3", "steam_today_t", "water_today_m3", "devices_reporting", "devices_total",
)


def energy_quantities(index: DeviceIndex, energy: np.ndarray) -> dict[str, np.ndarray]:
    """Per-device contributions of a window's energy to the summed day quantities (any window: the
    keys keep their `_today_` names so `derive` serves live KPIs and stored windows alike).

    Args:
        index: the device index.
        energy: `(n_devices, N_COUNTERS)` energy of the window per counter field.
    """
    grid = index.has_role(Role.GRID_METER)
    green = index.has_role(Role.GREEN_SUPPLY)
    generation = index.has_role(Role.PV, Role.WIND)
    zero = np.zeros(index.n_devices)
    return {
        "grid_import_today_kwh": np.where(grid, energy[:, F_IMPORT], zero),
        "grid_export_today_kwh": np.where(grid, energy[:, F_EXPORT], zero),
        "generation_today_kwh": np.where(generation, energy[:, F_EXPORT], zero),
        "green_supply_today_kwh": np.where(green, energy[:, F_IMPORT], zero),
        "gas_today_m3": np.where(index.has_role(Role.GAS_METER), energy[:, F_GAS], zero),
        "steam_today_t": np.where(index.has_role(Role.STEAM_METER), energy[:, F_STEAM], zero),
        "water_today_m3": np.where(index.has_role(Role.WATER_METER), energy[:, F_WATER], zero),
    }


def device_quantities(index: DeviceIndex, state: StreamState, now_ms: int) -> dict[str, np.ndarray]:
    """Per-device contributions to each summed quantity (zero where the role does not contribute).

    Args:
        index: the device index.
        state: the streaming state.
        now_ms: current time (a device silent for longer than the state's stale limit counts no power).
    """
    fresh = state.fresh(now_ms)
    power = np.where(state.power_ts >= now_ms - state.limits.stale_after_ms, state.power_kw, 0.0)
    grid = index.has_role(Role.GRID_METER)
    green = index.has_role(Role.GREEN_SUPPLY)
    zero = np.zeros(index.n_devices)
    return energy_quantities(index, state.today_by_field()) | {
        "pv_kw": np.where(index.has_role(Role.PV), power, zero),
        "wind_kw": np.where(index.has_role(Role.WIND), power, zero),
        "grid_import_kw": np.where(grid, np.maximum(power, 0.0), zero),
        "grid_export_kw": np.where(grid, np.maximum(-power, 0.0), zero),
        "green_supply_kw": np.where(green, power, zero),
        "storage_kw": np.where(index.has_role(Role.STORAGE), power, zero),
        "devices_reporting": fresh.astype(np.float64),
        "devices_total": np.ones(index.n_devices),
    }


def derive(sums: dict[str, np.ndarray], factors: Factors,
           members: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Complete summed quantities with the derived KPIs (vectorised over groups).

    Args:
        sums: summed quantities (`_SUMMED`), one array over groups each.
        factors: tce and CO2 factors.
        members: for parks, the sums of their enterprises' `renewable_consumed_today_kwh` and
            `net_purchase_today_kwh` (attributions that must not net one enterprise against another);
            None for enterprises, which compute them from their own sums.
    """
    out = dict(sums)
    generation_kw = sums["pv_kw"] + sums["wind_kw"]
    out["generation_kw"] = generation_kw
    out["load_kw"] = (sums["grid_import_kw"] - sums["grid_export_kw"] + sums["green_supply_kw"] + generation_kw
                      + sums["storage_kw"])
    imp, exp = sums["grid_import_today_kwh"], sums["grid_export_today_kwh"]
    gen, green = sums["generation_today_kwh"], sums["green_supply_today_kwh"]
    consumed = np.maximum(imp + green + gen - exp, 0.0)
    if members is None:
        renewable = np.maximum(gen - exp, 0.0) + green
        net_purchase = np.maximum(imp - exp, 0.0)
    else:
        renewable, net_purchase = members["renewable_consumed_today_kwh"], members["net_purchase_today_kwh"]
    out["consumed_today_kwh"] = consumed
    out["renewable_consumed_today_kwh"] = renewable
    out["net_purchase_today_kwh"] = net_purchase
    with np.errstate(divide="ignore", invalid="ignore"):
        out["new_energy_ratio_today"] = np.where(consumed > 0, np.minimum(renewable / consumed, 1.0), np.nan)
    out.update(carbon(out, factors))
    return out


def carbon(q: dict[str, np.ndarray], factors: Factors) -> dict[str, np.ndarray]:
    """tce and CO2 of groups from their day quantities (see analytics.factors for the accounting)."""
    coal = factors.coal
    kgce = (q["consumed_today_kwh"] * factors.electricity_kgce_per_kwh.value
            + q["gas_today_m3"] * coal.natural_gas.value + q["steam_today_t"] * coal.steam.value)
    if coal.water is not None:
        kgce = kgce + q["water_today_m3"] * coal.water.value
    scope1 = q["gas_today_m3"] * factors.fuel_co2.natural_gas.value
    scope2 = q["net_purchase_today_kwh"] * factors.grid_kgco2_per_kwh.value
    if factors.heat_co2.steam is not None:
        scope2 = scope2 + q["steam_today_t"] * factors.heat_co2.steam.value
    co2 = scope1 + scope2
    with np.errstate(divide="ignore", invalid="ignore"):
        intensity = np.where(kgce > 0, co2 / kgce, np.nan)  # kgCO2/kgce = tCO2/tce
    return {"tce_today": kgce / 1000.0, "co2_today_kg": co2, "co2_scope1_today_kg": scope1,
            "co2_scope2_today_kg": scope2, "carbon_intensity_tco2_per_tce": intensity}


def _to_kpi(values: dict[str, np.ndarray], i: int) -> dict[str, float | None]:
    kpi: dict[str, float | None] = {}
    for key in KPI_KEYS:
        v = float(values[key][i])
        kpi[key] = None if np.isnan(v) else v + 0.0  # + 0.0 turns -0.0 into 0.0
    return kpi


def compute_kpis(index: DeviceIndex, state: StreamState, now_ms: int,
                 factors: Factors | None = None) -> dict[str, dict[str, Any]]:
    """KPIs of every park of the registry (parks without data get zeros and a null ratio).

    Args:
        index: the device index.
        state: the streaming state.
        now_ms: current time.
        factors: tce and CO2 factors (default: the shipped REFERENCE.md figures).

    Returns:
        Per park id: `{"kpi": {KPI}, "enterprises": {enterprise_id: {KPI}}}`.
    """
    per_device = device_quantities(index, state, now_ms)
    n_ent, n_park = len(index.enterprise_ids), len(index.park_ids)
    ent_sums = {k: np.bincount(index.enterprise, per_device[k], minlength=n_ent) for k in _SUMMED}
    factors = factors or default_factors()
    ent = derive(ent_sums, factors)
    park_sums = {k: np.bincount(index.enterprise_park, ent_sums[k], minlength=n_park) for k in _SUMMED}
    members = {k: np.bincount(index.enterprise_park, ent[k], minlength=n_park)
               for k in ("renewable_consumed_today_kwh", "net_purchase_today_kwh")}
    park = derive(park_sums, factors, members)
    ent["demand_15min_kw"], ent["max_demand_month_kw"] = state.demand(now_ms, index.demand_enterprise, n_ent)
    park["demand_15min_kw"], park["max_demand_month_kw"] = state.demand(
        now_ms, index.enterprise_park[index.demand_enterprise], n_park)
    ent["contracted_capacity_kw"] = index.contracted_kw
    known = ~np.isnan(index.contracted_kw)
    park_contracted = np.bincount(index.enterprise_park[known], index.contracted_kw[known], minlength=n_park)
    park["contracted_capacity_kw"] = np.where(
        np.bincount(index.enterprise_park[known], minlength=n_park) > 0, park_contracted, np.nan)
    out: dict[str, dict[str, Any]] = {
        pid: {"kpi": _to_kpi(park, p), "enterprises": {}} for p, pid in enumerate(index.park_ids)
    }
    for e, eid in enumerate(index.enterprise_ids):
        out[index.park_ids[index.enterprise_park[e]]]["enterprises"][eid] = _to_kpi(ent, e)
    return out
