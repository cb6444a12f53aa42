"""The registry flattened into arrays: one index per device, with its role, enterprise and park.

Analytics works on dense integer indices so the kernels and the aggregation are array operations;
this module is the only place that maps ids to indices and reads device templates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_agent.registermap import DataType, TemplateError, load_template
from parkmodel.points import POINTS
from parkmodel.registry import Registry, Role

#: Cumulative counters analytics turns into energy, in series order within a device.
COUNTER_FIELDS: tuple[str, ...] = ("energy_import_kwh", "energy_export_kwh", "gas_volume_m3", "steam_t", "water_m3")
F_IMPORT, F_EXPORT, F_GAS, F_STEAM, F_WATER = range(len(COUNTER_FIELDS))
N_COUNTERS = len(COUNTER_FIELDS)
#: Field code of `active_power_kw`; any other field is `F_OTHER` (it only shows the device is alive).
F_POWER = N_COUNTERS
F_OTHER = N_COUNTERS + 1
#: Every field of the point dictionary, counters and power first; codes from `F_OTHER` on only show a device is
#: alive. `F_UNKNOWN` marks a name outside the dictionary (the message is rejected).
ALL_FIELDS: tuple[str, ...] = (*COUNTER_FIELDS, "active_power_kw",
                               *sorted(set(POINTS) - {*COUNTER_FIELDS, "active_power_kw"}))
FIELD_CODES: dict[str, int] = {name: i for i, name in enumerate(ALL_FIELDS)}
F_UNKNOWN = -1
#: Plausible range per field code (parkmodel.points), for vectorised validation of decoded batches.
FIELD_LOW = np.array([POINTS[name].low for name in ALL_FIELDS], dtype=np.float64)
FIELD_HIGH = np.array([POINTS[name].high for name in ALL_FIELDS], dtype=np.float64)

ROLES: tuple[Role, ...] = tuple(Role)
ROLE_CODES: dict[Role, int] = {role: i for i, role in enumerate(ROLES)}
#: Roles whose positive active power flows out of the unit (generation, storage discharge).
SOURCE_ROLES = frozenset({Role.PV, Role.WIND, Role.STORAGE})
#: Roles whose import/export energy may be integrated from power when they have no counter.
ELECTRIC_ENERGY_ROLES = frozenset({Role.GRID_METER, Role.GREEN_SUPPLY, Role.PV, Role.WIND, Role.STORAGE,
                                   Role.LOAD_METER})
_WRAP_BITS = {DataType.UINT16: 16, DataType.UINT32: 32}


@dataclass(frozen=True, slots=True)
class DeviceIndex:
    """Dense indices of a registry's parks, enterprises and devices.

    Attributes:
        device_ids: device id per device index.
        role: role code (`ROLE_CODES`) per device.
        enterprise: enterprise index per device.
        park: park index per device.
        enterprise_ids: enterprise id per enterprise index.
        enterprise_park: park index per enterprise.
        park_ids: park id per park index.
        modulus: per counter series (`device * N_COUNTERS + field`), where its register wraps (0: never).
        integrate: per counter series, True where the device has no such counter but reports power,
            so the energy is integrated from `active_power_kw`.
        power_sign: per device, +1 if positive power is import (meters), -1 if it is export (sources).
        position: device index per device id.
        demand_row: per counter series, its row among the demand series (grid meters' import
            counters, whose 15-minute averages are the enterprise's demand), -1 for the others.
        demand_enterprise: enterprise index per demand row.
        contracted_kw: contracted capacity per enterprise (NaN where the registry has none).
    """

    device_ids: tuple[str, ...]
    role: np.ndarray
    enterprise: np.ndarray
    park: np.ndarray
    enterprise_ids: tuple[str, ...]
    enterprise_park: np.ndarray
    park_ids: tuple[str, ...]
    modulus: np.ndarray
    integrate: np.ndarray
    power_sign: np.ndarray
    position: dict[str, int]
    demand_row: np.ndarray
    demand_enterprise: np.ndarray
    contracted_kw: np.ndarray

    @property
    def n_demand(self) -> int:
        return int(self.demand_enterprise.shape[0])

    @property
    def n_devices(self) -> int:
        return len(self.device_ids)

    @property
    def n_series(self) -> int:
        return len(self.device_ids) * N_COUNTERS

    @property
    def demand_device_ids(self) -> tuple[str, ...]:
        """Device id per demand row (the grid meters, in row order)."""
        series = np.flatnonzero(self.demand_row >= 0)
        order = np.argsort(self.demand_row[series], kind="stable")
        return tuple(self.device_ids[int(s) // N_COUNTERS] for s in series[order])

    def has_role(self, *roles: Role) -> np.ndarray:
        """Boolean mask over devices holding any of `roles`."""
        return np.isin(self.role, [ROLE_CODES[r] for r in roles])


def build_index(registry: Registry) -> DeviceIndex:
    """Flatten `registry` into a `DeviceIndex`, reading each device's template once.

    Args:
        registry: the park registry.
    """
    park_ids: list[str] = []
    ent_ids: list[str] = []
    ent_park: list[int] = []
    dev_ids: list[str] = []
    role: list[int] = []
    ent_of: list[int] = []
    park_of: list[int] = []
    modulus: list[float] = []
    integrate: list[bool] = []
    sign: list[int] = []
    contracted: list[float] = []
    for p_i, park in enumerate(registry.parks):
        park_ids.append(park.id)
        for ent in park.enterprises:
            e_i = len(ent_ids)
            ent_ids.append(ent.id)
            ent_park.append(p_i)
            contracted.append(float(ent.contracted_capacity_kw or np.nan))
            for gw in ent.gateways:
                for dev in gw.devices:
                    dev_ids.append(dev.id)
                    role.append(ROLE_CODES[dev.role])
                    ent_of.append(e_i)
                    park_of.append(p_i)
                    sign.append(-1 if dev.role in SOURCE_ROLES else 1)
                    mods, integ = _series_of(dev.template, dev.role)
                    modulus.extend(mods)
                    integrate.extend(integ)
    role_arr = np.asarray(role, dtype=np.int64)
    demand_row = np.full(len(dev_ids) * N_COUNTERS, -1, dtype=np.int64)
    grid_devices = np.flatnonzero(role_arr == ROLE_CODES[Role.GRID_METER])
    demand_row[grid_devices * N_COUNTERS + F_IMPORT] = np.arange(grid_devices.shape[0])
    return DeviceIndex(
        device_ids=tuple(dev_ids),
        role=role_arr,
        enterprise=np.asarray(ent_of, dtype=np.int64),
        park=np.asarray(park_of, dtype=np.int64),
        enterprise_ids=tuple(ent_ids),
        enterprise_park=np.asarray(ent_park, dtype=np.int64),
        park_ids=tuple(park_ids),
        modulus=np.asarray(modulus, dtype=np.float64),
        integrate=np.asarray(integrate, dtype=np.bool_),
        power_sign=np.asarray(sign, dtype=np.int64),
        position={d: i for i, d in enumerate(dev_ids)},
        demand_row=demand_row,
        demand_enterprise=np.asarray(ent_of, dtype=np.int64)[grid_devices],
        contracted_kw=np.asarray(contracted, dtype=np.float64),
    )


def _series_of(template_name: str, role: Role) -> tuple[list[float], list[bool]]:
    """Per counter field of a device: its wrap modulus and whether energy must come from power."""
    try:
        points = {p.point: p for p in load_template(template_name).points}
    except TemplateError:
        # A third-party gateway's device with no shipped template: trust the counters it sends.
        return [0.0] * N_COUNTERS, [False] * N_COUNTERS
    mods: list[float] = []
    integ: list[bool] = []
    for i, name in enumerate(COUNTER_FIELDS):
        p = points.get(name)
        bits = _WRAP_BITS.get(p.type) if p is not None else None
        mods.append(float(2**bits) * abs(p.scale) if p is not None and bits else 0.0)
        integ.append(p is None and i in (F_IMPORT, F_EXPORT) and role in ELECTRIC_ENERGY_ROLES
                     and "active_power_kw" in points)
    return mods, integ
