"""Pure logic: sun, profiles, balance and storage over whole simulated days, register encoding."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

import pytest

from edge_agent.registermap import load_template
from parkmodel.registry import Role, load_registry
from simulators.faults import FaultError, FaultKind, check_applies, parse_fault
from simulators.model import DeviceSim, EnterpriseSim, device_rng
from simulators.profiles import BEIJING, local_hour, ou_step, pv_fraction, solar_elevation_deg
from simulators.registers import DeviceImage
from simulators.weather import Weather

SUPPLY_ROLES = (Role.GRID_METER, Role.GREEN_SUPPLY, Role.PV, Role.WIND, Role.STORAGE)


def _daylight_hours(day: datetime) -> tuple[float, float]:
    hours = [h / 12 for h in range(24 * 12)]
    up = [h for h in hours if solar_elevation_deg((day + timedelta(hours=h)).timestamp()) > -0.83]
    return min(up), max(up)


def test_sun_over_ordos_rises_and_sets_by_season() -> None:
    summer = datetime(2024, 6, 21, tzinfo=BEIJING)
    winter = datetime(2024, 12, 21, tzinfo=BEIJING)
    # Solar noon in Ordos is ~12:40 Beijing time; elevation 90 − 39.6 ± 23.4.
    assert solar_elevation_deg((summer + timedelta(hours=12, minutes=40)).timestamp()) == pytest.approx(73.8, abs=1)
    assert solar_elevation_deg((winter + timedelta(hours=12, minutes=40)).timestamp()) == pytest.approx(27.0, abs=1)
    rise, sset = _daylight_hours(summer)
    assert 5.0 < rise < 5.5 and 20.0 < sset < 20.4  # ≈ 05:15 / 20:10 (half-day 7.4 h around 12:43)
    rise, sset = _daylight_hours(winter)
    assert 7.8 < rise < 8.2 and 17.1 < sset < 17.5  # ≈ 08:00 / 17:19 (half-day 4.7 h around 12:39)
    assert pv_fraction((summer + timedelta(hours=2)).timestamp(), cloud=0.0) == 0
    assert pv_fraction((summer + timedelta(hours=12, minutes=40)).timestamp(), 0.0) > 2.5 * pv_fraction(
        (summer + timedelta(hours=12, minutes=40)).timestamp(), 1.0)


def test_ou_step_is_stable_for_any_step() -> None:
    rng = random.Random(1)
    x = 50.0
    for dt in (1e-6, 0.5, 10.0, 1e6):
        x = ou_step(x, 50.0, 600.0, 0.02, dt, rng)
        assert abs(x - 50.0) < 0.2


def _enterprise(ent_id: str, seed: int = 5) -> EnterpriseSim:
    registry = load_registry()
    found = registry.enterprise(ent_id)
    assert found is not None
    _, ent = found
    devices = [DeviceSim(ref, load_template(ref.device.template), i + 1, device_rng(seed, ref.device.id))
               for gw in ent.gateways for i, d in enumerate(gw.devices)
               if (ref := registry.device(d.id)) is not None]
    return EnterpriseSim(ent, devices)


@pytest.mark.parametrize("ent_id", ["ot-lowcarbon-si", "zc-battery", "zc-pvglass", "sl-methanol", "ot-coalchem"])
def test_energy_balance_and_storage_over_a_simulated_day(ent_id: str) -> None:
    sim = _enterprise(ent_id)
    weather = Weather(random.Random(2))
    start = datetime(2024, 4, 10, tzinfo=BEIJING).timestamp()
    counters0 = {d.id: dict(d.counters) for d in sim.devices}
    charged = discharged = exported = False
    dt_h = 5 / 60
    for step in range(1, int(24 / dt_h) + 1):
        ts = start + step * dt_h * 3600
        weather.step(ts, dt_h)
        sim.step(ts, dt_h, weather)
        power = {d.id: d.values.get("active_power_kw", 0.0) for d in sim.devices}
        supply = sum(power[d.id] for r in SUPPLY_ROLES for d in sim.role(r))
        loads = sum(power[d.id] for d in sim.role(Role.LOAD_METER))
        assert supply == pytest.approx(loads, rel=1e-9)
        for d in sim.role(Role.STORAGE):
            assert 4.9 <= d.soc_pct <= 95.1
            charged |= power[d.id] < 0 and 10 <= local_hour(ts) < 16
            discharged |= power[d.id] > 0 and 17 <= local_hour(ts) < 22
        exported |= any(power[d.id] < 0 for d in sim.role(Role.GRID_METER))
        for d in sim.role(Role.PV):
            assert power[d.id] >= 0
    if sim.role(Role.STORAGE):
        assert charged and discharged
    # Counters integrate the reported power: their increments balance as well.
    def delta(d: DeviceSim, point: str) -> float:
        return d.counters.get(point, 0.0) - counters0[d.id].get(point, 0.0)
    load_kwh = sum(delta(d, "energy_import_kwh") for d in sim.role(Role.LOAD_METER))
    supply_kwh = sum(delta(d, "energy_import_kwh") - delta(d, "energy_export_kwh")
                     for r in (Role.GRID_METER, Role.GREEN_SUPPLY) for d in sim.role(r))
    supply_kwh += sum(delta(d, "energy_export_kwh") - delta(d, "energy_import_kwh")
                      for r in (Role.PV, Role.WIND, Role.STORAGE) for d in sim.role(r))
    assert supply_kwh == pytest.approx(load_kwh, rel=1e-9)
    assert load_kwh > 0
    if exported:
        assert any(delta(d, "energy_export_kwh") > 0 for d in sim.role(Role.GRID_METER))
    gas = sim.role(Role.GAS_METER)
    assert all(delta(d, "gas_volume_m3") > 0 for d in gas)


def test_integer_counters_roll_over_at_two_to_the_32() -> None:
    image = DeviceImage(load_template("acrel_dtsd1352"))
    full_scale = 2**32 * 0.01
    image.write({"energy_import_kwh": full_scale - 1.0})
    assert image.read_point("energy_import_kwh") == pytest.approx(full_scale - 1.0, abs=0.006)
    image.write({"energy_import_kwh": full_scale + 5.0})
    assert image.read_point("energy_import_kwh") == pytest.approx(5.0, abs=0.006)
    # Float counters do not wrap.
    image = DeviceImage(load_template("eastron_sdm630"))
    image.write({"energy_import_kwh": 1e9})
    assert image.read_point("energy_import_kwh") == pytest.approx(1e9, rel=1e-6)


def test_garbage_is_out_of_range_for_every_template_point() -> None:
    for name in ("acrel_dtsd1352", "eastron_sdm630", "gas_detector", "env_station", "huawei_sun2000", "storage_pcs"):
        template = load_template(name)
        image = DeviceImage(template)
        image.write({}, garbage=True)
        for p in template.points:
            value = image.read_point(p.point)
            if p.high is not None:
                assert math.isnan(value) or value > p.high, (name, p.point, value)


def test_fault_names_and_applicability() -> None:
    assert parse_fault("gas_leak") is FaultKind.GAS_LEAK
    with pytest.raises(FaultError, match="known faults: timeout, exception, counter_reset"):
        parse_fault("flood")
    with pytest.raises(FaultError, match="needs a counter point"):
        check_applies(FaultKind.COUNTER_RESET, "gd1", load_template("gas_detector"))
    with pytest.raises(FaultError, match="smoke_alarm"):
        check_applies(FaultKind.FIRE, "m1", load_template("acrel_dtsd1352"))
    check_applies(FaultKind.COUNTER_RESET, "w1", load_template("water_meter_badc"))
