"""Jittered exponential backoff, shared by Modbus links, device pollers and the MQTT connection."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

_SHARED_RNG = random.Random()


@dataclass
class Backoff:
    """Delays growing `base * factor**n` up to `cap`, with full jitter in [delay/2, delay].

    Jitter spreads the retries of many devices (or gateways) that failed at the same moment, so they
    do not hammer a recovering bus or broker in lockstep.

    Args:
        base: first delay in seconds.
        cap: largest delay in seconds.
        factor: growth per failure.
    """

    base: float = 0.1
    cap: float = 60.0
    factor: float = 2.0
    failures: int = 0
    # One shared generator: seeding a new Random per instance reads os.urandom, measurable per poll.
    _rng: random.Random = field(default=_SHARED_RNG, repr=False)

    def next_delay(self) -> float:
        """Record one more failure and return how long to wait before the next attempt."""
        delay = min(self.cap, self.base * self.factor ** min(self.failures, 64))
        self.failures += 1
        return delay / 2 + self._rng.random() * delay / 2

    def reset(self) -> None:
        """Forget the failures (after a success)."""
        self.failures = 0
