"""Golden day: one small enterprise's 2025-06-01 (Beijing) worked out by hand, matched to the unit.

Readings every 15 minutes from 00:00 to 24:00 (the 24:00 reading closes the day's last step):

| device | counter | what happens | day's quantity |
|---|---|---|---|
| grid (acrel_dtsd1352, uint32 × 0.01 kWh: wraps at 42,949,672.96) | import | 42,949,600.00 at 00:00, +10 kWh per quarter (40 kW); wraps at 02:00 (42,949,680 → 7.04); silent 10:00–12:00 (a gap of 80 kWh, booked in the hour it ends, 11:00–12:00) | 96 × 10 = 960 kWh |
| grid | export | 500.00, +5 kWh per quarter 12:00–14:00 (PV surplus) | 8 × 5 = 40 kWh |
| pv (huawei_sun2000, uint32 × 0.01) | export | 8000 until 06:00, +25 per quarter; inverter replaced at 09:00: reads 25 (counted from 0), +25 to 18:00 | 48 × 25 = 1200 kWh |
| gas (gas_flowmeter_f64) | m³ | 1000, +2.5 m³ per quarter 08:00–20:00 | 48 × 2.5 = 120 m³ |
| steam (steam_flowmeter) | t | 50, +0.05 t per quarter all day | 96 × 0.05 = 4.8 t |

Electricity (DESIGN.md): consumed = import 960 + green 0 + generation 1200 − export 40 = 2120 kWh;
renewable consumed = (1200 − 40) + 0 = 1160 kWh; ratio = 1160 / 2120 = 0.5471698…; net purchase = 920 kWh.

Standard coal (GB/T 2589-2020, 当量值): 2120 kWh × 0.1229 = 260.548 kgce; 120 m³ × 1.2143 = 145.716 kgce;
4.8 t × 128.6 = 617.28 kgce; total 1023.544 kgce = 1.023544 tce.
(等价值: 2120 × 0.3024 = 641.088 → 641.088 + 145.716 + 617.28 = 1404.084 kgce.)

CO2: scope 1 = 120 m³ × 2.1622 = 259.464 kg; scope 2 = 920 kWh × 0.6479 (Inner Mongolia 2023) = 596.068 kg
+ 4.8 t steam × 413.9 = 1986.72 kg → 2582.788 kg; total 2842.252 kg; intensity 2842.252 / 1023.544
= 2.776874… tCO2/tce.

Demand: the grid import is 10 kWh per quarter = 40 kW in every complete quarter (the gap's quarters have none).
Coverage: the grid import counter is silent 2 of 24 hours → 22/24 = 0.91667 of the day.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from analytics import kernels as k
from analytics.backfill import day_figures, replay_columns
from analytics.devices import FIELD_CODES, build_index
from analytics.factors import load_factors
from analytics.state import StreamState
from tests.conftest import make_registry

DAY = int(datetime(2025, 5, 31, 16, tzinfo=UTC).timestamp() * 1000)  # 2025-06-01 00:00 Beijing
Q = k.QUARTER_MS
WRAP = 2**32 * 0.01


def golden_readings(uid: str) -> list[tuple[str, int, str, float]]:
    rows: list[tuple[str, int, str, float]] = []
    for q in range(97):  # 00:00 .. 24:00
        t = DAY + q * Q
        if not 40 < q < 48:  # silent 10:00–12:00 (readings 10:15 .. 11:45 missing)
            rows.append((f"grid{uid}", t, "energy_import_kwh", (42_949_600.0 + 10.0 * q) % WRAP))
        rows.append((f"grid{uid}", t, "energy_export_kwh", 500.0 + 5.0 * min(max(q - 48, 0), 8)))
        pv_q = min(max(q, 24), 72)  # generating 06:00–18:00, reporting all day
        rows.append((f"pv{uid}", t, "energy_export_kwh", 8000.0 + 25 * (pv_q - 24) if pv_q < 36 else 25.0 * (pv_q - 35)))
        rows.append((f"gas{uid}", t, "gas_volume_m3", 1000.0 + 2.5 * min(max(q - 32, 0), 48)))
        rows.append((f"steam{uid}", t, "steam_t", 50.0 + 0.05 * q))
    return rows


def columns(index, rows):  # type: ignore[no-untyped-def]
    return (np.array([index.position[d] for d, *_ in rows], dtype=np.int64),
            np.array([t for _, t, *_ in rows], dtype=np.int64),
            np.array([FIELD_CODES[f] for *_, f, _ in rows], dtype=np.int64),
            np.array([v for *_, v in rows], dtype=np.float64))


@pytest.fixture
def setup(uid: str):  # type: ignore[no-untyped-def]
    registry = make_registry(uid, [
        {"id": f"grid{uid}", "role": "grid_meter", "template": "acrel_dtsd1352"},
        {"id": f"pv{uid}", "role": "pv", "template": "huawei_sun2000"},
        {"id": f"gas{uid}", "role": "gas_meter", "template": "gas_flowmeter_f64"},
        {"id": f"steam{uid}", "role": "steam_meter", "template": "steam_flowmeter"},
    ])
    index = build_index(registry)
    rows = golden_readings(uid)
    rng = np.random.default_rng(7)
    shuffled = [rows[i] for i in rng.permutation(len(rows))] + rows[:50]  # any order, redelivered points
    return index, columns(index, shuffled)


def test_golden_day_backfill_matches_the_hand_computed_table(setup) -> None:  # type: ignore[no-untyped-def]
    index, cols = setup
    (day,) = replay_columns(index, cols, DAY, DAY + k.DAY_MS)
    assert day.start_ms == DAY
    figs = day_figures(index, day, load_factors())
    daily = figs[-1]
    assert daily.window == "day" and daily.start_ms == DAY
    e = {key: float(v[0]) for key, v in daily.enterprise.items()}
    want = {
        "grid_import_kwh": 960.0, "grid_export_kwh": 40.0, "generation_kwh": 1200.0, "green_supply_kwh": 0.0,
        "consumed_kwh": 2120.0, "renewable_consumed_kwh": 1160.0, "net_purchase_kwh": 920.0,
        "new_energy_ratio": 1160 / 2120, "gas_m3": 120.0, "steam_t": 4.8, "water_m3": 0.0,
        "tce": 1.023544, "co2_scope1_kg": 259.464, "co2_scope2_kg": 2582.788, "co2_kg": 2842.252,
        "carbon_intensity_tco2_per_tce": 2842.252 / 1023.544, "coverage": 22 / 24,
    }
    assert e == pytest.approx(want, rel=1e-9, abs=1e-6)
    assert want["carbon_intensity_tco2_per_tce"] == pytest.approx(2.776874, abs=1e-6)
    park = {key: float(v[0]) for key, v in daily.park.items()}
    assert park == pytest.approx(want, rel=1e-9, abs=1e-6)
    # Hourly grid import: 40 kWh an hour, nothing 10:00–11:00, the gap's 80 kWh in 11:00–12:00.
    hourly = [f.enterprise["grid_import_kwh"][0] for f in figs[:24]]
    assert hourly == pytest.approx([40.0] * 10 + [0.0, 80.0] + [40.0] * 12)
    assert [f.enterprise["generation_kwh"][0] for f in figs[:24]] == pytest.approx(
        [0.0] * 6 + [100.0] * 12 + [0.0] * 6)
    assert [f.start_ms for f in figs[:24]] == [DAY + h * k.HOUR_MS for h in range(24)]
    # Per device: the PV counter's reset and the grid counter's wrap lose nothing.
    pv = index.position[next(d for d in index.device_ids if d.startswith("pv"))]
    assert daily.device[pv, 1] == pytest.approx(1200.0)
    # 等价值 selectable: 2120 × 0.3024 + 145.716 + 617.28 = 1404.084 kgce.
    other = day_figures(index, day, load_factors(electricity_convention="equal_value"))[-1]
    assert other.enterprise["tce"][0] == pytest.approx(1.404084)


def test_golden_day_live_state_gives_the_same_day_and_the_demand(setup) -> None:  # type: ignore[no-untyped-def]
    index, cols = setup
    end = DAY + k.DAY_MS - 1  # 23:59:59.999: the day is still "today"
    state = StreamState(index, DAY - 3600_000)
    before = cols[1] < DAY + k.DAY_MS
    state.update(*(c[before] for c in cols), now_ms=end)
    today = state.today_by_field()
    grid, pv = index.position[index.device_ids[0]], index.position[index.device_ids[1]]
    # Without the 24:00 reading the last quarter is not closed yet: 950 kWh imported, 1200 generated.
    assert today[grid, 0] == pytest.approx(950.0)
    assert today[pv, 1] == pytest.approx(1200.0)
    last, peak = state.demand(end, index.demand_enterprise, len(index.enterprise_ids))
    assert peak[0] == pytest.approx(40.0)
    assert last[0] == pytest.approx(40.0)  # 23:30–23:45, the last complete quarter
    # Month to date (the 1st of June): the same as today.
    np.testing.assert_allclose(state.month, state.today)
