"""Response models: what the API shows of each registry resource and of the data."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from parkmodel.registry import DeviceRef, Enterprise, NewEnergyTarget, OutputTarget, Park

T = TypeVar("T")


class PageOf(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class ParkPublic(BaseModel):
    id: str
    name: str
    name_en: str
    green_park: bool
    green_park_target_year: int | None
    new_energy_targets: list[NewEnergyTarget]
    output_targets: list[OutputTarget]
    enterprise_count: int
    device_count: int

    @classmethod
    def of(cls, park: Park) -> ParkPublic:
        return cls(
            id=park.id, name=park.name, name_en=park.name_en, green_park=park.green_park,
            green_park_target_year=park.green_park_target_year, new_energy_targets=park.new_energy_targets,
            output_targets=park.output_targets, enterprise_count=len(park.enterprises),
            device_count=sum(len(g.devices) for e in park.enterprises for g in e.gateways),
        )


class EnterprisePublic(BaseModel):
    id: str
    park: str
    name: str
    name_en: str
    industry: str
    area: str
    land_area_mu: float
    contracted_capacity_kw: float | None
    gateways: list[str]
    device_count: int

    @classmethod
    def of(cls, park: Park, ent: Enterprise) -> EnterprisePublic:
        return cls(
            id=ent.id, park=park.id, name=ent.name, name_en=ent.name_en, industry=ent.industry, area=ent.area,
            land_area_mu=ent.land_area_mu, contracted_capacity_kw=ent.contracted_capacity_kw,
            gateways=[g.id for g in ent.gateways], device_count=sum(len(g.devices) for g in ent.gateways),
        )


class DevicePublic(BaseModel):
    id: str
    park: str
    enterprise: str
    gateway: str
    role: str
    template: str
    name: str
    location: str
    parent: str | None
    rated_kw: float | None
    poll_interval_s: float

    @classmethod
    def of(cls, ref: DeviceRef) -> DevicePublic:
        d = ref.device
        return cls(
            id=d.id, park=ref.park.id, enterprise=ref.enterprise.id, gateway=ref.gateway.id, role=d.role.value,
            template=d.template, name=d.name, location=d.location, parent=d.parent, rated_kw=d.rated_kw,
            poll_interval_s=d.poll_interval_s,
        )


class FieldValue(BaseModel):
    value: float | None
    ts: int


class LatestPublic(BaseModel):
    device: str
    park: str
    enterprise: str
    ts: int | None
    fields: dict[str, FieldValue]


class HistoryPublic(BaseModel):
    device: str
    start: int
    end: int
    every_s: int
    fields: list[str]
    # One row per bucket: {"ts": ms, field: mean, ...}
    points: list[dict[str, Any]]


class KpiPublic(BaseModel):
    scope: str
    park: str
    enterprise: str | None = None
    ts: int | None
    source: str | None  # "live" (MQTT), "influxdb" (last stored row) or None (no data yet)
    kpi: dict[str, Any] | None


class KpiHistoryPublic(BaseModel):
    scope: str
    park: str
    enterprise: str | None = None
    start: int
    end: int
    every_s: int
    fields: list[str]
    # One row per bucket: {"ts": ms, key: value, ...}; powers are bucket means, "today" counters the last value.
    points: list[dict[str, Any]]


class EnterpriseKpiRow(BaseModel):
    enterprise: str
    name: str
    name_en: str
    land_area_mu: float
    contracted_capacity_kw: float | None
    ts: int | None
    kpi: dict[str, Any] | None
    consumed_today_kwh_per_mu: float | None


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    username: str
    role: str
    enterprise: str | None


class MePublic(BaseModel):
    kind: str
    subject: str
    role: str
    enterprise: str | None


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=1024)
    role: str
    enterprise: str | None = None


class UserPublic(BaseModel):
    username: str
    role: str
    enterprise: str | None
    created_at: int
    revoked_at: int | None


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: str
    enterprise: str | None = None


class KeyPublic(BaseModel):
    id: str
    name: str
    role: str
    enterprise: str | None
    created_at: int
    revoked_at: int | None


class KeyCreated(KeyPublic):
    key: str  # shown once
