"""Injectable faults and events of one simulated device, and what each applies to."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from edge_agent.registermap import Template
from parkmodel.points import POINTS, PointKind


class FaultKind(StrEnum):
    TIMEOUT = "timeout"  # the unit stops answering
    EXCEPTION = "exception"  # the unit answers every request with a Modbus exception (04 device failure)
    COUNTER_RESET = "counter_reset"  # counters restart from 0, as after a meter replacement (one-shot)
    GAS_LEAK = "gas_leak"  # LEL, H2S and CO ramp up over ~30 s simulated
    FIRE = "fire"  # the fire panel's smoke/fire discrete input goes to 1
    GARBAGE = "garbage"  # registers hold out-of-range values (all ones, NaN)
    CLEAR = "clear"  # remove every fault and every pinned value


class FaultError(ValueError):
    """A fault or a pinned value that does not apply; the message says what would."""


GAS_LEAK_RAMP_S = 30.0


@dataclass
class FaultState:
    """The faults currently active on a device."""

    timeout: bool = False
    exception: bool = False
    garbage: bool = False
    fire: bool = False
    gas_leak_since: float | None = None  # simulated epoch seconds the leak began
    pinned: dict[str, float] = field(default_factory=dict)

    def active(self) -> list[str]:
        """Names of the active faults (for the state endpoint)."""
        names = [k.value for k, on in ((FaultKind.TIMEOUT, self.timeout), (FaultKind.EXCEPTION, self.exception),
                                        (FaultKind.GARBAGE, self.garbage), (FaultKind.FIRE, self.fire),
                                        (FaultKind.GAS_LEAK, self.gas_leak_since is not None)) if on]
        return names

    def clear(self) -> None:
        self.timeout = self.exception = self.garbage = self.fire = False
        self.gas_leak_since = None
        self.pinned.clear()


def parse_fault(kind: object) -> FaultKind:
    """The fault named `kind`, or a `FaultError` listing the known ones.

    Args:
        kind: the name given by the caller.
    """
    try:
        return FaultKind(str(kind))
    except ValueError:
        known = ", ".join(k.value for k in FaultKind)
        raise FaultError(f"unknown fault {kind!r}; known faults: {known}") from None


def check_applies(kind: FaultKind, device_id: str, template: Template) -> None:
    """Raise `FaultError` if fault `kind` makes no sense for a device with this template.

    Args:
        kind: the fault.
        device_id: the device (named in the message).
        template: the device's register map.
    """
    names = {p.point for p in template.points}
    need = {
        FaultKind.COUNTER_RESET: ({n for n in names if POINTS[n].kind is PointKind.COUNTER}, "a counter point"),
        FaultKind.GAS_LEAK: (names & {"lel_pct", "h2s_ppm", "co_ppm"}, "gas concentration points (a gas detector)"),
        FaultKind.FIRE: (names & {"smoke_alarm"}, "a smoke_alarm input (a fire panel)"),
    }
    if kind in need and not need[kind][0]:
        raise FaultError(
            f"fault {kind.value!r} does not apply to device {device_id!r} (template {template.name!r}): "
            f"it needs {need[kind][1]}"
        )
