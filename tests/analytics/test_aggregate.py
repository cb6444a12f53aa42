"""Aggregation device → enterprise → park on a small enterprise worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from analytics.aggregate import KPI_KEYS, compute_kpis
from analytics.devices import F_OTHER, FIELD_CODES, N_COUNTERS, build_index
from analytics.factors import load_factors
from analytics.state import StreamState
from tests.conftest import make_registry

# 2025-06-01 12:00 Beijing time.
NOON = int(datetime(2025, 6, 1, 4, 0, tzinfo=UTC).timestamp() * 1000)
MORNING = NOON - 4 * 3600_000


def feed(state: StreamState, rows: list[tuple[str, int, str, float]], now: int = NOON) -> None:
    index = state.index
    state.update(
        np.array([index.position[d] for d, *_ in rows], dtype=np.int64),
        np.array([ts for _, ts, *_ in rows], dtype=np.int64),
        np.array([FIELD_CODES.get(f, F_OTHER) for *_, f, _ in rows], dtype=np.int64),
        np.array([v for *_, v in rows], dtype=np.float64),
        now,
    )


def test_enterprise_with_grid_meter_load_meters_pv_exporting_and_green_supply(uid: str) -> None:
    registry = make_registry(uid, [
        {"id": f"grid{uid}", "role": "grid_meter", "template": "acrel_dtsd1352"},
        {"id": f"lm1{uid}", "role": "load_meter", "template": "acrel_dtsd1352", "parent": f"grid{uid}"},
        {"id": f"lm2{uid}", "role": "load_meter", "template": "acrel_dtsd1352", "parent": f"grid{uid}"},
        {"id": f"pv{uid}", "role": "pv", "template": "huawei_sun2000", "rated_kw": 200},
        {"id": f"green{uid}", "role": "green_supply", "template": "acrel_dtsd1352"},
        {"id": f"gas{uid}", "role": "gas_meter", "template": "gas_flowmeter_f64"},
    ], enterprises=2)
    index = build_index(registry)
    state = StreamState(index, NOON)
    late = NOON - 30_000
    feed(state, [
        # Grid meter: 500 kWh imported this morning, 60 kWh exported around noon; now exporting 40 kW.
        (f"grid{uid}", MORNING, "energy_import_kwh", 10_000.0), (f"grid{uid}", late, "energy_import_kwh", 10_500.0),
        (f"grid{uid}", MORNING, "energy_export_kwh", 2_000.0), (f"grid{uid}", late, "energy_export_kwh", 2_060.0),
        (f"grid{uid}", late, "active_power_kw", -40.0),
        # Sub-meters (already inside the grid meter's 500 kWh): never added.
        (f"lm1{uid}", MORNING, "energy_import_kwh", 0.0), (f"lm1{uid}", late, "energy_import_kwh", 400.0),
        (f"lm1{uid}", late, "active_power_kw", 100.0),
        (f"lm2{uid}", MORNING, "energy_import_kwh", 0.0), (f"lm2{uid}", late, "energy_import_kwh", 350.0),
        (f"lm2{uid}", late, "active_power_kw", 90.0),
        # PV: 300 kWh generated, 150 kW now.
        (f"pv{uid}", MORNING, "energy_export_kwh", 7_000.0), (f"pv{uid}", late, "energy_export_kwh", 7_300.0),
        (f"pv{uid}", late, "active_power_kw", 150.0),
        # Green supply line: 200 kWh, 80 kW now.
        (f"green{uid}", MORNING, "energy_import_kwh", 1_000.0), (f"green{uid}", late, "energy_import_kwh", 1_200.0),
        (f"green{uid}", late, "active_power_kw", 80.0),
        # Gas: 35.5 m³.
        (f"gas{uid}", MORNING, "gas_volume_m3", 100.0), (f"gas{uid}", late, "gas_volume_m3", 135.5),
        (f"gas{uid}", late, "temperature_c", 20.0),
    ])
    kpis = compute_kpis(index, state, NOON)
    assert set(kpis) == {f"p{uid}"}
    ent = kpis[f"p{uid}"]["enterprises"][f"e{uid}-0"]
    assert tuple(ent) == KPI_KEYS
    # consumed = import 500 + green 200 + generation 300 - export 60 = 940 kWh
    # renewable = (generation 300 - export 60, export counted as PV first) + green 200 = 440 kWh
    assert ent["consumed_today_kwh"] == pytest.approx(940.0)
    assert ent["renewable_consumed_today_kwh"] == pytest.approx(440.0)
    assert ent["new_energy_ratio_today"] == pytest.approx(440 / 940)
    assert ent["grid_import_today_kwh"] == pytest.approx(500.0)
    assert ent["grid_export_today_kwh"] == pytest.approx(60.0)
    assert ent["generation_today_kwh"] == pytest.approx(300.0)
    assert ent["green_supply_today_kwh"] == pytest.approx(200.0)
    assert ent["gas_today_m3"] == pytest.approx(35.5)
    # load = import 0 - export 40 + green 80 + generation 150 + storage 0 = 190 kW (not the sub-meters' 190 added)
    assert ent["load_kw"] == pytest.approx(190.0)
    assert (ent["grid_import_kw"], ent["grid_export_kw"], ent["pv_kw"], ent["generation_kw"]) == (0.0, 40.0, 150.0,
                                                                                                   150.0)
    assert (ent["devices_reporting"], ent["devices_total"]) == (6.0, 6.0)
    # The second enterprise has no devices: zeros and a null ratio; the park equals the first enterprise.
    empty = kpis[f"p{uid}"]["enterprises"][f"e{uid}-1"]
    assert empty["new_energy_ratio_today"] is None and empty["consumed_today_kwh"] == 0.0
    # (contracted capacity is the registry's: 1000 kW for each of the two enterprises)
    assert kpis[f"p{uid}"]["kpi"] == ent | {"contracted_capacity_kw": 2000.0}
    assert ent["demand_15min_kw"] is None and ent["max_demand_month_kw"] is None  # no complete window yet
    # A minute later nobody has reported for 90 s: power drops out, the day's energy stays.
    later = compute_kpis(index, state, NOON + 60_000)[f"p{uid}"]["kpi"]
    assert later["load_kw"] == 0.0 and later["devices_reporting"] == 0.0
    assert later["consumed_today_kwh"] == pytest.approx(940.0)


def test_park_renewable_is_the_sum_of_enterprises_not_netted_across_them(uid: str) -> None:
    # e-0 generates 100 kWh and imports 100; e-1 (storage discharging to the grid) exports 50 and imports 150.
    registry = make_registry(uid, enterprises=2)
    reg = registry.model_dump()
    reg["parks"][0]["enterprises"][1]["gateways"][0]["devices"] = [
        {"id": f"m2{uid}", "role": "grid_meter", "template": "acrel_dtsd1352"},
    ]
    from parkmodel.registry import parse_registry

    registry = parse_registry(reg)
    index = build_index(registry)
    state = StreamState(index, NOON)
    feed(state, [
        (f"m{uid}", MORNING, "energy_import_kwh", 0.0), (f"m{uid}", NOON - 1, "energy_import_kwh", 100.0),
        (f"pv{uid}", MORNING, "energy_export_kwh", 0.0), (f"pv{uid}", NOON - 1, "energy_export_kwh", 100.0),
        (f"m2{uid}", MORNING, "energy_import_kwh", 0.0), (f"m2{uid}", NOON - 1, "energy_import_kwh", 150.0),
        (f"m2{uid}", MORNING, "energy_export_kwh", 0.0), (f"m2{uid}", NOON - 1, "energy_export_kwh", 50.0),
    ])
    park = compute_kpis(index, state, NOON)[f"p{uid}"]["kpi"]
    # consumed = (100 + 100) + (150 - 50) = 300; renewable = 100 (e-0) + 0 (e-1 has no generation)
    assert park["consumed_today_kwh"] == pytest.approx(300.0)
    assert park["renewable_consumed_today_kwh"] == pytest.approx(100.0)
    assert park["new_energy_ratio_today"] == pytest.approx(1 / 3)


def test_new_day_zeroes_the_days_energy(uid: str) -> None:
    index = build_index(make_registry(uid))
    state = StreamState(index, NOON)
    feed(state, [(f"m{uid}", MORNING, "energy_import_kwh", 0.0), (f"m{uid}", NOON, "energy_import_kwh", 10.0)])
    assert compute_kpis(index, state, NOON)[f"p{uid}"]["kpi"]["grid_import_today_kwh"] == pytest.approx(10.0)
    tomorrow = NOON + 12 * 3600_000 + 60_000  # 00:01 Beijing
    feed(state, [(f"m{uid}", tomorrow - 120_000, "energy_import_kwh", 13.0),
                 (f"m{uid}", tomorrow, "energy_import_kwh", 14.0)], now=tomorrow)
    # 23:59→00:01 is 1 kWh, half of it after midnight; the 12 h gap before it is yesterday's.
    kpi = compute_kpis(index, state, tomorrow)[f"p{uid}"]["kpi"]
    assert kpi["grid_import_today_kwh"] == pytest.approx(0.5)


def test_counterless_device_energy_is_integrated_from_power(uid: str) -> None:
    # huawei_sun2000 has no import counter: PV night consumption (negative power) is integrated as import.
    index = build_index(make_registry(uid))
    state = StreamState(index, NOON)
    sid = index.position[f"pv{uid}"] * N_COUNTERS
    assert index.integrate[sid] and not index.integrate[sid + 1]
    feed(state, [(f"pv{uid}", NOON - 120_000, "active_power_kw", -3.0), (f"pv{uid}", NOON - 60_000,
                                                                          "active_power_kw", -3.0)])
    assert state.today[sid] == pytest.approx(3.0 / 60)


def test_tce_and_co2_worked_by_hand(uid: str) -> None:
    registry = make_registry(uid, [
        {"id": f"grid{uid}", "role": "grid_meter", "template": "acrel_dtsd1352"},
        {"id": f"pv{uid}", "role": "pv", "template": "huawei_sun2000"},
        {"id": f"green{uid}", "role": "green_supply", "template": "acrel_dtsd1352"},
        {"id": f"gas{uid}", "role": "gas_meter", "template": "gas_flowmeter_f64"},
        {"id": f"steam{uid}", "role": "steam_meter", "template": "steam_flowmeter"},
    ])
    index = build_index(registry)
    state = StreamState(index, NOON)
    end = NOON - 1
    feed(state, [
        (f"grid{uid}", MORNING, "energy_import_kwh", 0.0), (f"grid{uid}", end, "energy_import_kwh", 500.0),
        (f"grid{uid}", MORNING, "energy_export_kwh", 0.0), (f"grid{uid}", end, "energy_export_kwh", 60.0),
        (f"pv{uid}", MORNING, "energy_export_kwh", 0.0), (f"pv{uid}", end, "energy_export_kwh", 300.0),
        (f"green{uid}", MORNING, "energy_import_kwh", 0.0), (f"green{uid}", end, "energy_import_kwh", 200.0),
        (f"gas{uid}", MORNING, "gas_volume_m3", 0.0), (f"gas{uid}", end, "gas_volume_m3", 100.0),
        (f"steam{uid}", MORNING, "steam_t", 0.0), (f"steam{uid}", end, "steam_t", 2.0),
    ])
    kpi = compute_kpis(index, state, NOON)[f"p{uid}"]["kpi"]
    # kgce = 940 kWh × 0.1229 + 100 m³ × 1.2143 + 2 t × 128.6 = 115.526 + 121.43 + 257.2 = 494.156
    assert kpi["tce_today"] == pytest.approx(0.494156)
    # scope 1 = 100 m³ × 2.1622 = 216.22 kg; scope 2 = (500 − 60) kWh × 0.6479 + 2 t × 413.9 = 285.076 + 827.8
    assert kpi["co2_scope1_today_kg"] == pytest.approx(216.22)
    assert kpi["co2_scope2_today_kg"] == pytest.approx(1112.876)
    assert kpi["co2_today_kg"] == pytest.approx(1329.096)
    assert kpi["carbon_intensity_tco2_per_tce"] == pytest.approx(1329.096 / 494.156)
    # National grid factor and 等价值 selectable.
    other = load_factors(grid_region="national", electricity_convention="equal_value")
    kpi = compute_kpis(index, state, NOON, other)[f"p{uid}"]["kpi"]
    assert kpi["co2_scope2_today_kg"] == pytest.approx(440 * 0.5306 + 827.8)
    assert kpi["tce_today"] == pytest.approx((940 * 0.3024 + 121.43 + 257.2) / 1000)


def test_no_energy_means_null_intensity(uid: str) -> None:
    index = build_index(make_registry(uid))
    kpi = compute_kpis(index, StreamState(index, NOON), NOON)[f"p{uid}"]["kpi"]
    assert kpi["carbon_intensity_tco2_per_tce"] is None and kpi["tce_today"] == 0.0
