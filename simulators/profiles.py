"""Pure daily profiles for the simulated park: sun, weather, loads, ambient air (Beijing time, Ordos).

Everything here is a function of time and a random generator: no I/O, no state beyond what is passed.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta, timezone

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
# Ordos (Kangbashi) — the parks of the registry lie within a degree of it.
ORDOS_LAT_DEG = 39.6
ORDOS_LON_DEG = 109.8


def local_time(ts: float) -> datetime:
    """The Beijing wall-clock time of epoch seconds `ts`."""
    return datetime.fromtimestamp(ts, BEIJING)


def local_hour(ts: float) -> float:
    """Hours since local (Beijing) midnight, as a float."""
    t = local_time(ts)
    return t.hour + t.minute / 60 + t.second / 3600


def solar_elevation_deg(ts: float, lat_deg: float = ORDOS_LAT_DEG, lon_deg: float = ORDOS_LON_DEG) -> float:
    """Elevation of the sun above the horizon (degrees) at epoch seconds `ts`.

    Args:
        ts: epoch seconds.
        lat_deg: latitude of the site.
        lon_deg: longitude of the site (east positive).
    """
    utc = datetime.fromtimestamp(ts, UTC)
    day = utc.timetuple().tm_yday
    gamma = 2 * math.pi / 365 * (day - 1 + (utc.hour - 12) / 24)
    # NOAA approximations of declination and equation of time.
    decl = (0.006918 - 0.399912 * math.cos(gamma) + 0.070257 * math.sin(gamma) - 0.006758 * math.cos(2 * gamma)
            + 0.000907 * math.sin(2 * gamma) - 0.002697 * math.cos(3 * gamma) + 0.00148 * math.sin(3 * gamma))
    eot_min = 229.18 * (0.000075 + 0.001868 * math.cos(gamma) - 0.032077 * math.sin(gamma)
                        - 0.014615 * math.cos(2 * gamma) - 0.040849 * math.sin(2 * gamma))
    utc_min = utc.hour * 60 + utc.minute + utc.second / 60
    solar_min = utc_min + 4 * lon_deg + eot_min
    hour_angle = math.radians(solar_min / 4 - 180)
    lat = math.radians(lat_deg)
    sin_el = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour_angle)
    return math.degrees(math.asin(max(-1.0, min(1.0, sin_el))))


def clear_sky_fraction(elevation_deg: float) -> float:
    """Plane-of-array irradiance under clear sky as a fraction of 1000 W/m² (0 below the horizon)."""
    if elevation_deg <= 0:
        return 0.0
    s = math.sin(math.radians(elevation_deg))
    air_mass = 1 / (s + 0.50572 * (elevation_deg + 6.07995) ** -1.6364)
    # Meinel's clear-sky model; fixed-tilt panels at latitude tilt collect a little more at low sun.
    direct = 1.353 * 0.7 ** (air_mass**0.678)
    return max(0.0, min(1.05, direct * (0.35 + 0.65 * s) + 0.1 * s))


def pv_fraction(ts: float, cloud: float) -> float:
    """PV output as a fraction of rated power, given cloudiness 0 (clear) .. 1 (overcast)."""
    return clear_sky_fraction(solar_elevation_deg(ts)) * (1 - 0.75 * cloud**1.5) * 0.9


def wind_fraction(wind_ms: float, cut_in: float = 3.0, rated: float = 12.0, cut_out: float = 25.0) -> float:
    """Turbine power curve: fraction of rated power at hub wind speed `wind_ms`."""
    if wind_ms < cut_in or wind_ms >= cut_out:
        return 0.0
    if wind_ms >= rated:
        return 1.0
    return (wind_ms**3 - cut_in**3) / (rated**3 - cut_in**3)


def ambient_temperature_c(ts: float) -> float:
    """Typical Ordos air temperature: −11 °C mean in January, 22 °C in July, ±6 °C over the day."""
    t = local_time(ts)
    day = t.timetuple().tm_yday
    seasonal = 5.5 - 16.5 * math.cos(2 * math.pi * (day - 15) / 365)
    diurnal = 6.0 * math.cos(2 * math.pi * (local_hour(ts) - 15) / 24)  # warmest at 15:00
    return seasonal + diurnal


def load_factor(kind: str, ts: float) -> float:
    """Fraction of rated power a load draws at `ts` (Beijing time).

    Args:
        kind: `process` (continuous chemical plant), `shift` (two-shift manufacturing), `hvac`,
            `office`, or `utility` (pumps, compressors: follow production loosely).
        ts: epoch seconds.
    """
    t = local_time(ts)
    h = local_hour(ts)
    weekend = t.weekday() >= 5
    if kind == "office":
        base = 0.15
        if 8 <= h < 18 and not weekend:
            base = 0.75 - 0.1 * math.cos(2 * math.pi * (h - 13) / 10)
        elif 7 <= h < 20:
            base = 0.3
        return base
    if kind == "hvac":
        temp = ambient_temperature_c(ts)
        demand = max(abs(temp - 18.0) / 25.0, 0.1)  # heating in winter, cooling in summer
        occupied = 1.0 if 7 <= h < 20 else 0.6
        return min(0.95, 0.2 + 0.7 * demand * occupied)
    if kind == "shift":
        working = 0.85 if 8 <= h < 24 else 0.35
        return working * (0.7 if weekend else 1.0)
    if kind == "utility":
        return 0.65 + 0.1 * math.sin(2 * math.pi * (h - 9) / 24)
    # Continuous process: flat, with a small dip in the small hours and a midday peak.
    return 0.82 + 0.05 * math.sin(2 * math.pi * (h - 8) / 24)


def ou_step(x: float, mean: float, theta_per_h: float, sigma: float, dt_h: float, rng: random.Random) -> float:
    """One exact step of an Ornstein-Uhlenbeck process (stable for any `dt_h`).

    Args:
        x: current value.
        mean: the level it reverts to.
        theta_per_h: reversion rate per hour.
        sigma: stationary standard deviation.
        dt_h: step in hours.
        rng: random generator.
    """
    if dt_h <= 0:
        return x
    decay = math.exp(-theta_per_h * dt_h)
    return mean + (x - mean) * decay + sigma * math.sqrt(1 - decay * decay) * rng.gauss(0.0, 1.0)
