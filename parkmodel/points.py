"""The point dictionary: every field name a telemetry payload may carry, with its unit.

Field names carry their unit (DESIGN.md). Extend the dictionary here, never ad hoc.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PointKind(StrEnum):
    INSTANT = "instant"  # a sampled value (power, concentration)
    COUNTER = "counter"  # a cumulative, normally rising register (kWh, m³)
    STATE = "state"  # a discrete 0/1 input


@dataclass(frozen=True, slots=True, kw_only=True)
class PointSpec:
    name: str
    unit: str
    kind: PointKind
    zh: str
    en: str
    # Physically plausible range: a value outside it is flagged, never stored as truth.
    low: float
    high: float


_SPECS = (
    PointSpec(name="active_power_kw", unit="kW", kind=PointKind.INSTANT, zh="有功功率", en="Active power",
              low=-1e6, high=1e6),
    PointSpec(name="reactive_power_kvar", unit="kvar", kind=PointKind.INSTANT, zh="无功功率",
              en="Reactive power", low=-1e6, high=1e6),
    PointSpec(name="energy_import_kwh", unit="kWh", kind=PointKind.COUNTER, zh="正向有功电能",
              en="Energy imported", low=0, high=1e12),
    PointSpec(name="energy_export_kwh", unit="kWh", kind=PointKind.COUNTER, zh="反向有功电能",
              en="Energy exported", low=0, high=1e12),
    PointSpec(name="voltage_v", unit="V", kind=PointKind.INSTANT, zh="电压", en="Voltage", low=0, high=1e6),
    PointSpec(name="current_a", unit="A", kind=PointKind.INSTANT, zh="电流", en="Current", low=-1e5, high=1e5),
    PointSpec(name="power_factor", unit="", kind=PointKind.INSTANT, zh="功率因数", en="Power factor",
              low=-1, high=1),
    PointSpec(name="frequency_hz", unit="Hz", kind=PointKind.INSTANT, zh="频率", en="Frequency", low=0, high=100),
    PointSpec(name="gas_volume_m3", unit="m³", kind=PointKind.COUNTER, zh="天然气累计量", en="Gas volume",
              low=0, high=1e12),
    PointSpec(name="steam_t", unit="t", kind=PointKind.COUNTER, zh="蒸汽累计量", en="Steam", low=0, high=1e12),
    PointSpec(name="water_m3", unit="m³", kind=PointKind.COUNTER, zh="用水累计量", en="Water", low=0, high=1e12),
    PointSpec(name="lel_pct", unit="%LEL", kind=PointKind.INSTANT, zh="可燃气体浓度", en="Combustible gas",
              low=0, high=100),
    PointSpec(name="h2s_ppm", unit="ppm", kind=PointKind.INSTANT, zh="硫化氢浓度", en="H2S", low=0, high=1e4),
    PointSpec(name="co_ppm", unit="ppm", kind=PointKind.INSTANT, zh="一氧化碳浓度", en="CO", low=0, high=1e4),
    PointSpec(name="temperature_c", unit="°C", kind=PointKind.INSTANT, zh="温度", en="Temperature",
              low=-60, high=1500),
    PointSpec(name="humidity_pct", unit="%RH", kind=PointKind.INSTANT, zh="湿度", en="Humidity", low=0, high=100),
    PointSpec(name="pm25_ugm3", unit="µg/m³", kind=PointKind.INSTANT, zh="PM2.5", en="PM2.5", low=0, high=1e4),
    PointSpec(name="pm10_ugm3", unit="µg/m³", kind=PointKind.INSTANT, zh="PM10", en="PM10", low=0, high=1e4),
    PointSpec(name="so2_ugm3", unit="µg/m³", kind=PointKind.INSTANT, zh="二氧化硫", en="SO2", low=0, high=1e5),
    PointSpec(name="no2_ugm3", unit="µg/m³", kind=PointKind.INSTANT, zh="二氧化氮", en="NO2", low=0, high=1e5),
    PointSpec(name="smoke_alarm", unit="", kind=PointKind.STATE, zh="烟感报警", en="Smoke alarm", low=0, high=1),
    PointSpec(name="soc_pct", unit="%", kind=PointKind.INSTANT, zh="荷电状态", en="State of charge",
              low=0, high=100),
)

POINTS: dict[str, PointSpec] = {spec.name: spec for spec in _SPECS}


def point(name: str) -> PointSpec:
    """The spec of point `name`; `KeyError` names the known points."""
    try:
        return POINTS[name]
    except KeyError:
        raise KeyError(f"unknown point {name!r}; known points: {', '.join(sorted(POINTS))}") from None
