"""The park registry: parks, enterprises (with land area), gateways and devices with their roles.

Loaded from YAML and validated once; lookups by id afterwards are dictionary reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from parkmodel.ids import ID_PATTERN

Id = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
DEFAULT_REGISTRY = Path(__file__).parent / "data" / "registry.yaml"
MU_M2 = 666.67  # 1 mu in square metres


class Role(StrEnum):
    GRID_METER = "grid_meter"
    GREEN_SUPPLY = "green_supply"
    PV = "pv"
    WIND = "wind"
    STORAGE = "storage"
    LOAD_METER = "load_meter"
    GAS_METER = "gas_meter"
    STEAM_METER = "steam_meter"
    WATER_METER = "water_meter"
    GAS_DETECTOR = "gas_detector"
    ENV_SENSOR = "env_sensor"
    FIRE_PANEL = "fire_panel"


ELECTRIC_ROLES = frozenset({Role.GRID_METER, Role.GREEN_SUPPLY, Role.PV, Role.WIND, Role.STORAGE, Role.LOAD_METER})
GENERATION_ROLES = frozenset({Role.PV, Role.WIND})
SAFETY_ROLES = frozenset({Role.GAS_DETECTOR, Role.FIRE_PANEL, Role.ENV_SENSOR})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Device(_Model):
    id: Id
    role: Role
    template: str = Field(description="device template (register map) name, e.g. 'acrel_dtsd1352'")
    name: str = ""
    location: str = ""
    # A sub-meter names the meter it hangs under, so aggregation never counts it twice.
    parent: Id | None = None
    rated_kw: float | None = Field(default=None, ge=0, description="nameplate power (PV, wind, storage, loads)")
    poll_interval_s: float = Field(default=2.0, gt=0, le=3600)


class Gateway(_Model):
    id: Id
    name: str = ""
    devices: list[Device] = Field(default_factory=list)


class NewEnergyTarget(_Model):
    year: int = Field(ge=2000, le=2100)
    ratio: float = Field(ge=0, le=1)
    area: str = Field(default="", description="sub-area the target applies to, e.g. 鄂尔多斯零碳产业园")
    source: str = ""


class OutputTarget(_Model):
    year: int = Field(ge=2000, le=2100)
    output_value_yi_yuan: float = Field(ge=0, description="industrial output value target, 10^8 yuan")
    source: str = ""


class Enterprise(_Model):
    id: Id
    name: str
    name_en: str = ""
    industry: str = ""
    area: str = Field(default="", description="sub-area of the park (e.g. 零碳产业园), if any")
    land_area_mu: float = Field(gt=0)
    contracted_capacity_kw: float | None = Field(default=None, gt=0)
    gateways: list[Gateway] = Field(default_factory=list)


class Park(_Model):
    id: Id
    name: str
    name_en: str = ""
    green_park: bool = False
    green_park_target_year: int | None = None
    output_targets: list[OutputTarget] = Field(default_factory=list)
    new_energy_targets: list[NewEnergyTarget] = Field(default_factory=list)
    enterprises: list[Enterprise] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DeviceRef:
    park: Park
    enterprise: Enterprise
    gateway: Gateway
    device: Device


class Registry(_Model):
    version: Literal[1] = 1
    parks: list[Park]

    @model_validator(mode="after")
    def _unique_and_consistent(self) -> Registry:
        seen: dict[str, set[str]] = {"park": set(), "enterprise": set(), "gateway": set(), "device": set()}

        def claim(kind: str, ident: str) -> None:
            if ident in seen[kind]:
                raise ValueError(f"{kind} id {ident!r} is used twice; {kind} ids must be unique")
            seen[kind].add(ident)

        for park in self.parks:
            claim("park", park.id)
            for ent in park.enterprises:
                claim("enterprise", ent.id)
                ent_devices = {d.id for gw in ent.gateways for d in gw.devices}
                for gw in ent.gateways:
                    claim("gateway", gw.id)
                    for dev in gw.devices:
                        claim("device", dev.id)
                        if dev.parent is not None and dev.parent not in ent_devices:
                            raise ValueError(
                                f"device {dev.id!r}: parent {dev.parent!r} is not a device of enterprise {ent.id!r}"
                            )
        return self

    def model_post_init(self, _context: object) -> None:
        parks = {p.id: p for p in self.parks}
        enterprises = {e.id: (p, e) for p in self.parks for e in p.enterprises}
        devices = {
            d.id: DeviceRef(p, e, g, d)
            for p in self.parks for e in p.enterprises for g in e.gateways for d in g.devices
        }
        gateways = {g.id: (p, e, g) for p in self.parks for e in p.enterprises for g in e.gateways}
        object.__setattr__(self, "_parks", parks)
        object.__setattr__(self, "_enterprises", enterprises)
        object.__setattr__(self, "_devices", devices)
        object.__setattr__(self, "_gateways", gateways)

    # Lookups: return None when absent, so callers decide whether that is a 404 or a dead letter.
    def park(self, park_id: str) -> Park | None:
        return self._parks.get(park_id)  # type: ignore[attr-defined,no-any-return]

    def enterprise(self, enterprise_id: str) -> tuple[Park, Enterprise] | None:
        return self._enterprises.get(enterprise_id)  # type: ignore[attr-defined,no-any-return]

    def device(self, device_id: str) -> DeviceRef | None:
        return self._devices.get(device_id)  # type: ignore[attr-defined,no-any-return]

    def gateway(self, gateway_id: str) -> tuple[Park, Enterprise, Gateway] | None:
        return self._gateways.get(gateway_id)  # type: ignore[attr-defined,no-any-return]

    def device_at(self, park: str, enterprise: str, device: str) -> DeviceRef | None:
        """The device named by a topic, if it really belongs to that park and enterprise."""
        ref = self.device(device)
        if ref is None or ref.park.id != park or ref.enterprise.id != enterprise:
            return None
        return ref

    def devices(self) -> Iterator[DeviceRef]:
        yield from self._devices.values()  # type: ignore[attr-defined]


class RegistryError(ValueError):
    """The registry file is missing, not YAML, or invalid; the message names file and key."""


def parse_registry(data: object, source: str = "<registry>") -> Registry:
    try:
        return Registry.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: invalid registry:"]
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {where}: {err['msg']}")
        raise RegistryError("\n".join(lines)) from None


def load_registry(path: Path | str = DEFAULT_REGISTRY) -> Registry:
    """Load and validate a registry YAML file.

    Raises:
        RegistryError: naming the file, the key and what is expected.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"{path}: registry file not found (set SMARTPARK_REGISTRY or --registry)") from None
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from None
    return parse_registry(data, str(path))
