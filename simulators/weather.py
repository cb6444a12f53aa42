"""Shared weather and grid state of one park: cloudiness, wind, dust, grid frequency."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from simulators.profiles import ambient_temperature_c, ou_step


@dataclass
class Weather:
    """Random walks every device of a park sees alike (PV under one sky, turbines in one wind).

    Args:
        rng: the park's random generator.
    """

    rng: random.Random
    cloud: float = 0.25  # 0 clear .. 1 overcast
    wind_ms: float = 7.0  # hub-height wind speed
    dust: float = 1.0  # multiplier of particulate levels (Ordos dust days)
    frequency_hz: float = 50.0
    temperature_c: float = field(default=10.0)

    def step(self, ts: float, dt_h: float) -> None:
        """Advance the walks by `dt_h` simulated hours ending at epoch seconds `ts`."""
        r = self.rng
        self.cloud = min(1.0, max(0.0, ou_step(self.cloud, 0.3, 0.4, 0.3, dt_h, r)))
        self.wind_ms = max(0.0, ou_step(self.wind_ms, 7.0, 0.25, 3.0, dt_h, r))
        self.dust = max(0.5, ou_step(self.dust, 1.0, 0.2, 0.35, dt_h, r))
        # The grid's frequency wanders a few tens of mHz within seconds.
        self.frequency_hz = ou_step(self.frequency_hz, 50.0, 600.0, 0.02, dt_h, r)
        self.temperature_c = ambient_temperature_c(ts) + r.gauss(0.0, 0.15)
