"""Physics of one enterprise: loads first, then generation, storage, green supply, and the grid as balance.

Meters agree as real ones do: for every enterprise, at every tick,
grid import − export + green supply + PV + wind + storage = Σ load meters (storage positive while
discharging), up to each meter's small fixed gain error (class 0.2S: ≤ 0.05 % here). Counters integrate
the power each meter reports, so their increments balance too.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass, field

from edge_agent.registermap import Template
from parkmodel.points import POINTS, PointKind
from parkmodel.registry import DeviceRef, Enterprise, Role
from simulators.faults import GAS_LEAK_RAMP_S, FaultState
from simulators.profiles import (
    ambient_temperature_c,
    load_factor,
    local_hour,
    local_time,
    ou_step,
    pv_fraction,
    wind_fraction,
)
from simulators.registers import DeviceImage
from simulators.weather import Weather

PHASE_VOLTAGE_V = 230.0
_CONTINUOUS_INDUSTRIES = ("化工", "煤", "甲醇", "LNG", "冶金", "硅")
STORAGE_HOURS = 2.0  # battery energy = 2 h of rated power
SOC_MIN, SOC_MAX = 5.0, 95.0
# Utility use per kWh of production load (a rough chemical/manufacturing mix).
GAS_M3_PER_KWH = 0.03
STEAM_T_PER_KWH = 0.0008
WATER_M3_PER_KWH = 0.004
# Starting counters relative to a year of typical use: loads never export, turbines import only standby power.
_COUNTER_SHARE = {
    (Role.LOAD_METER, "energy_export_kwh"): 0.0, (Role.GREEN_SUPPLY, "energy_export_kwh"): 0.0,
    (Role.GRID_METER, "energy_export_kwh"): 0.05, (Role.WIND, "energy_import_kwh"): 0.01,
    (Role.STORAGE, "energy_import_kwh"): 0.3, (Role.STORAGE, "energy_export_kwh"): 0.27,
    (Role.PV, "energy_export_kwh"): 0.4,
}


def device_rng(seed: int, device_id: str) -> random.Random:
    """A generator per device that depends only on the seed and the id (stable across runs)."""
    return random.Random(seed * 1_000_003 + zlib.crc32(device_id.encode()))


@dataclass(eq=False)
class DeviceSim:
    """One simulated device: its physical state, faults, pinned values and register image."""

    ref: DeviceRef
    template: Template
    unit_id: int
    rng: random.Random
    image: DeviceImage = field(init=False)
    faults: FaultState = field(default_factory=FaultState)
    values: dict[str, float] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    gain: float = 1.0  # fixed metering error
    ct_ratio: float = 1.0  # current transformer ratio, so the current register stays in its range
    noise: float = 0.0  # slow random walk of the load around its profile
    soc_pct: float = 50.0

    def __post_init__(self) -> None:
        self.image = DeviceImage(self.template)
        self.point_names = frozenset(p.point for p in self.template.points)
        self.gain = 1.0 + self.rng.uniform(-0.0005, 0.0005)
        self.soc_pct = self.rng.uniform(30.0, 70.0)
        rated = self.ref.device.rated_kw or 1000.0
        for p in self.template.points:
            if POINTS[p.point].kind is PointKind.COUNTER:
                hours = self.rng.uniform(100.0, 2000.0)
                scale = {"gas_volume_m3": GAS_M3_PER_KWH, "steam_t": STEAM_T_PER_KWH,
                         "water_m3": WATER_M3_PER_KWH}.get(p.point, 1.0)
                scale *= _COUNTER_SHARE.get((self.role, p.point), 1.0)
                self.counters[p.point] = round(rated * hours * scale, 2)
        current = next((p for p in self.template.points if p.point == "current_a"), None)
        if current is not None and current.high is not None:
            rated_a = rated / 0.9 * 1000 / (3 * PHASE_VOLTAGE_V)
            self.ct_ratio = float(max(1, math.ceil(rated_a / (0.8 * current.high))))

    @property
    def id(self) -> str:
        return self.ref.device.id

    @property
    def role(self) -> Role:
        return self.ref.device.role

    def add(self, point: str, amount: float) -> None:
        if point in self.counters and amount > 0:
            self.counters[point] += amount

    def reset_counters(self) -> None:
        for name in self.counters:
            self.counters[name] = 0.0

    def publish(self) -> None:
        """Write the current values (pinned values win) into the register image."""
        merged = {**self.values, **self.counters, **self.faults.pinned}
        self.image.write(merged, garbage=self.faults.garbage)


def _load_kind(dev: DeviceSim, enterprise: Enterprise) -> str:
    name = dev.id
    for kind in ("office", "hvac", "utility"):
        if kind in name:
            return kind
    return "process" if any(k in enterprise.industry for k in _CONTINUOUS_INDUSTRIES) else "shift"


class EnterpriseSim:
    """All devices of one enterprise, stepped together so its meters balance.

    Args:
        enterprise: the registry entry.
        devices: the simulated devices of the enterprise (any gateway).
    """

    def __init__(self, enterprise: Enterprise, devices: list[DeviceSim]) -> None:
        self.enterprise = enterprise
        self.devices = devices
        self.by_role: dict[Role, list[DeviceSim]] = {}
        for d in devices:
            self.by_role.setdefault(d.role, []).append(d)
        self.load_kinds = {d.id: _load_kind(d, enterprise) for d in self.by_role.get(Role.LOAD_METER, [])}
        self.spread = {d.id: d.rng.uniform(0.93, 1.03) for d in devices}  # soiling, siting, ageing

    def role(self, role: Role) -> list[DeviceSim]:
        return self.by_role.get(role, [])

    def step(self, ts: float, dt_h: float, weather: Weather) -> None:
        """Advance every device by `dt_h` simulated hours, ending at epoch seconds `ts`."""
        load_kw, load_kvar = self._loads(ts, dt_h)
        gen_kw = self._generation(ts, weather, dt_h)
        green_kw = self._green_supply(ts, weather, dt_h, max(0.0, load_kw - gen_kw))
        storage_kw = self._storage(ts, dt_h, load_kw, gen_kw + green_kw)
        self._grid(weather, dt_h, load_kw - gen_kw - green_kw - storage_kw, load_kvar)
        self._utilities(ts, dt_h, load_kw)
        self._safety(ts, weather)
        for d in self.devices:
            if "frequency_hz" in d.point_names:
                d.values["frequency_hz"] = weather.frequency_hz + d.rng.gauss(0.0, 0.002)

    # -- electricity -------------------------------------------------------------------------------------------

    def _meter(self, d: DeviceSim, p_kw: float, pf: float, dt_h: float, *, voltage: float = PHASE_VOLTAGE_V,
               into_import: bool = True, q_kvar: float | None = None) -> float:
        """Set a meter's electrical values for true power `p_kw`; returns the power it reports.

        `into_import`: positive power counts as energy_import (loads, grid, green supply) or, if False,
        as energy_export (generation, storage discharge). `q_kvar` overrides the reactive power that
        `pf` would give (the grid meter carries the loads' reactive power).
        """
        p = p_kw * d.gain
        q = abs(p) * math.tan(math.acos(max(0.5, min(1.0, pf)))) if q_kvar is None else q_kvar * d.gain
        s = math.hypot(p, q)
        v = voltage * (1 + d.rng.gauss(0.0, 0.002))
        d.values.update({
            "active_power_kw": p,
            "reactive_power_kvar": q,
            "power_factor": p / s if s > 1e-9 else 1.0,
            "voltage_v": v,
            "current_a": s * 1000 / (3 * v) / d.ct_ratio,
        })
        energy = p * dt_h
        positive, negative = ("energy_import_kwh", "energy_export_kwh") if into_import else (
            "energy_export_kwh", "energy_import_kwh")
        d.add(positive if energy > 0 else negative, abs(energy))
        return p

    def _loads(self, ts: float, dt_h: float) -> tuple[float, float]:
        total_kw = total_kvar = 0.0
        for d in self.role(Role.LOAD_METER):
            d.noise = min(0.15, max(-0.15, ou_step(d.noise, 0.0, 2.0, 0.04, dt_h, d.rng)))
            rated = d.ref.device.rated_kw or 1000.0
            p = rated * load_factor(self.load_kinds[d.id], ts) * (1 + d.noise) * self.spread[d.id]
            pf = 0.93 + 0.03 * math.sin(d.unit_id) + d.rng.gauss(0.0, 0.003)
            reported = self._meter(d, max(0.0, p), pf, dt_h)
            total_kw += reported
            total_kvar += d.values["reactive_power_kvar"]
        return total_kw, total_kvar

    def _generation(self, ts: float, weather: Weather, dt_h: float) -> float:
        total = 0.0
        solar = pv_fraction(ts, weather.cloud)
        for d in self.role(Role.PV):
            rated = d.ref.device.rated_kw or 100.0
            p = rated * solar * self.spread[d.id] * (1 + d.rng.gauss(0.0, 0.01)) if solar > 0 else 0.0
            total += self._meter(d, max(0.0, p), 0.995, dt_h, voltage=400 / math.sqrt(3), into_import=False)
            d.values["voltage_v"] = 400.0 * (1 + d.rng.gauss(0.0, 0.002)) if p > 0 else 0.0
            d.values["temperature_c"] = weather.temperature_c + 8 + 30 * solar
        for d in self.role(Role.WIND):
            rated = d.ref.device.rated_kw or 2000.0
            gust = max(0.0, weather.wind_ms * self.spread[d.id] + d.rng.gauss(0.0, 0.4))
            frac = wind_fraction(gust)
            # Below cut-in the turbine draws a little for yaw, heating and control.
            p = rated * frac if frac > 0 else -0.002 * rated
            total += self._meter(d, p, 0.98, dt_h, voltage=690 / math.sqrt(3), into_import=False)
            d.values["voltage_v"] = 690.0 * (1 + d.rng.gauss(0.0, 0.002))
        return total

    def _green_supply(self, ts: float, weather: Weather, dt_h: float, deficit_kw: float) -> float:
        lines = self.role(Role.GREEN_SUPPLY)
        if not lines:
            return 0.0
        # The dedicated line comes from a wind + PV farm; the enterprise takes no more than it uses.
        available = 0.55 * wind_fraction(weather.wind_ms * 1.1) + 0.45 * pv_fraction(ts, weather.cloud)
        total = 0.0
        for d in lines:
            rated = d.ref.device.rated_kw or 1000.0
            p = min(rated * available, rated, max(0.0, deficit_kw - total))
            total += self._meter(d, p, 0.98, dt_h)
        return total

    def _storage(self, ts: float, dt_h: float, load_kw: float, supply_kw: float) -> float:
        hour = local_hour(ts)
        total = 0.0
        for d in self.role(Role.STORAGE):
            rated = d.ref.device.rated_kw or 500.0
            capacity = rated * STORAGE_HOURS
            surplus = supply_kw - load_kw
            p = 0.0
            if 10 <= hour < 16 and d.soc_pct < SOC_MAX:
                p = -min(rated, max(0.3 * rated, surplus))  # charge on the midday surplus
            elif 17 <= hour < 22 and d.soc_pct > SOC_MIN + 5:
                p = min(0.8 * rated, max(0.0, load_kw - supply_kw - total))  # shave the evening peak
            if dt_h > 0:  # never past the SOC bounds within this step
                if p < 0:
                    p = max(p, -(SOC_MAX - d.soc_pct) / 100 * capacity / 0.95 / dt_h)
                else:
                    p = min(p, (d.soc_pct - SOC_MIN) / 100 * capacity * 0.95 / dt_h)
            reported = self._meter(d, p, 0.99, dt_h, into_import=False)
            energy = reported * dt_h
            d.soc_pct += (-energy * 0.95 if energy < 0 else -energy / 0.95) / capacity * 100
            d.soc_pct = min(100.0, max(0.0, d.soc_pct))
            d.values["soc_pct"] = d.soc_pct
            d.values["voltage_v"] = 700 + 1.2 * d.soc_pct + d.rng.gauss(0.0, 0.5)
            d.values["temperature_c"] = 24 + 6 * abs(reported) / rated + d.rng.gauss(0.0, 0.2)
            total += reported
        return total

    def _grid(self, weather: Weather, dt_h: float, net_kw: float, load_kvar: float) -> None:
        meters = self.role(Role.GRID_METER)
        for d in meters:
            # The grid meter is the balance: it reads exactly what the other meters leave over.
            self._meter(d, net_kw / len(meters) / d.gain, 1.0, dt_h, q_kvar=load_kvar / len(meters) / d.gain)

    # -- other media and safety --------------------------------------------------------------------------------

    def _utilities(self, ts: float, dt_h: float, load_kw: float) -> None:
        for d in self.role(Role.GAS_METER):
            d.add("gas_volume_m3", GAS_M3_PER_KWH * load_kw * self.spread[d.id] * dt_h)
            d.values["temperature_c"] = 12 + 0.3 * ambient_temperature_c(ts) + d.rng.gauss(0.0, 0.1)
        for d in self.role(Role.STEAM_METER):
            d.add("steam_t", STEAM_T_PER_KWH * load_kw * self.spread[d.id] * dt_h)
            d.values["temperature_c"] = 200 + d.rng.gauss(0.0, 1.5)
        for d in self.role(Role.WATER_METER):
            d.add("water_m3", WATER_M3_PER_KWH * load_kw * self.spread[d.id] * dt_h)

    def _safety(self, ts: float, weather: Weather) -> None:
        for d in self.role(Role.GAS_DETECTOR):
            r = d.rng
            lel, h2s, co = max(0.0, r.gauss(0.3, 0.25)), max(0.0, r.gauss(0.1, 0.08)), max(0.0, r.gauss(1.0, 0.7))
            since = d.faults.gas_leak_since
            if since is not None:
                k = min(1.0, max(0.0, (ts - since) / GAS_LEAK_RAMP_S))
                lel, h2s, co = lel + 60 * k, h2s + 20 * k, co + 150 * k
            d.values.update({"lel_pct": lel, "h2s_ppm": h2s, "co_ppm": co,
                             "temperature_c": weather.temperature_c + 3 + r.gauss(0.0, 0.1)})
        for d in self.role(Role.ENV_SENSOR):
            r = d.rng
            t = local_time(ts)
            hour = local_hour(ts)
            heating = 1.6 if t.month in (11, 12, 1, 2, 3) else 1.0  # coal heating season
            rush = 1 + 0.35 * math.exp(-((hour - 8) ** 2) / 3) + 0.3 * math.exp(-((hour - 19) ** 2) / 4)
            pm25 = 28 * heating * rush * weather.dust * math.exp(r.gauss(0.0, 0.08))
            humidity = 62 - 1.1 * (weather.temperature_c - 5) + 15 * weather.cloud + r.gauss(0.0, 0.8)
            d.values.update({
                "pm25_ugm3": pm25,
                "pm10_ugm3": pm25 * (1.6 + 0.6 * weather.dust) * math.exp(r.gauss(0.0, 0.05)),
                "so2_ugm3": 12 * heating * math.exp(r.gauss(0.0, 0.1)),
                "no2_ugm3": 25 * rush * math.exp(r.gauss(0.0, 0.1)),
                "temperature_c": weather.temperature_c + r.gauss(0.0, 0.05),
                "humidity_pct": min(98.0, max(8.0, humidity)),
            })
        for d in self.role(Role.FIRE_PANEL):
            d.values["smoke_alarm"] = 1.0 if d.faults.fire else 0.0
