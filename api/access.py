"""What a caller may see: the one policy every route and the live stream go through (via `api.deps`).

A resource outside the caller's scope answers 404 exactly as a missing one would, so a caller cannot even
learn that another enterprise's device exists. A kind of resource a role never sees (park KPIs for an
enterprise, energy data for emergency management, admin routes for everyone but admins) answers 403.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.auth.principal import Principal, Role
from api.errors import forbidden, not_found
from parkmodel.registry import SAFETY_ROLES, DeviceRef, Enterprise, Park, Registry

SEES_ALL = frozenset({Role.OPERATIONS, Role.ADMIN})
EMERGENCY_CATEGORIES = frozenset({"safety", "environment"})


@dataclass(frozen=True, slots=True)
class AlertScope:
    """Constraints on alert queries: None means unconstrained.

    Attributes:
        categories: alert categories the caller may see.
        enterprise: the only enterprise whose alerts the caller may see.
    """

    categories: frozenset[str] | None
    enterprise: str | None


class Access:
    """The scope of one caller over one registry.

    Args:
        principal: who is asking.
        registry: the registry in force for this request.
    """

    def __init__(self, principal: Principal, registry: Registry) -> None:
        self.principal = principal
        self.registry = registry

    @property
    def role(self) -> Role:
        return self.principal.role

    @property
    def sees_all(self) -> bool:
        return self.role in SEES_ALL

    # ---- registry resources --------------------------------------------------------------------------
    def can_see_park(self, park: Park) -> bool:
        if self.role is Role.ENTERPRISE:
            return any(e.id == self.principal.enterprise for e in park.enterprises)
        return True

    def can_see_enterprise(self, ent: Enterprise) -> bool:
        if self.role is Role.ENTERPRISE:
            return ent.id == self.principal.enterprise
        return True  # emergency management sees who is where (the locations behind safety events)

    def can_see_device(self, ref: DeviceRef) -> bool:
        if self.role is Role.ENTERPRISE:
            return ref.enterprise.id == self.principal.enterprise
        if self.role is Role.EMERGENCY:
            return ref.device.role in SAFETY_ROLES
        return True

    def park(self, park_id: str) -> Park:
        park = self.registry.park(park_id)
        if park is None or not self.can_see_park(park):
            raise not_found("park", park_id)
        return park

    def enterprise(self, enterprise_id: str) -> tuple[Park, Enterprise]:
        found = self.registry.enterprise(enterprise_id)
        if found is None or not self.can_see_enterprise(found[1]):
            raise not_found("enterprise", enterprise_id)
        return found

    def device(self, device_id: str) -> DeviceRef:
        ref = self.registry.device(device_id)
        if ref is None or not self.can_see_device(ref):
            raise not_found("device", device_id)
        return ref

    def parks(self) -> list[Park]:
        return [p for p in self.registry.parks if self.can_see_park(p)]

    def enterprises(self, park: Park) -> list[Enterprise]:
        return [e for e in park.enterprises if self.can_see_enterprise(e)]

    def devices(self, ent: Enterprise) -> list[DeviceRef]:
        refs = (self.registry.device(d.id) for g in ent.gateways for d in g.devices)
        return [r for r in refs if r is not None and self.can_see_device(r)]

    # ---- KPIs (energy data) --------------------------------------------------------------------------
    def park_kpi(self, park_id: str) -> Park:
        if not self.sees_all:
            raise forbidden(f"role {self.role.value!r} does not see park KPIs")
        return self.park(park_id)

    def enterprise_kpi(self, enterprise_id: str) -> tuple[Park, Enterprise]:
        if self.role is Role.EMERGENCY:
            raise forbidden("emergency management does not see enterprises' energy data")
        return self.enterprise(enterprise_id)

    def require_kpi_overview(self) -> None:
        if not self.sees_all:
            raise forbidden(f"role {self.role.value!r} does not see park KPIs")

    # ---- administration ------------------------------------------------------------------------------
    def require_admin(self) -> None:
        if self.role is not Role.ADMIN:
            raise forbidden("administrators only")

    # ---- alerts and safety events --------------------------------------------------------------------
    def alert_scope(self) -> AlertScope:
        """The constraint an alert list must apply for this caller."""
        if self.role is Role.ENTERPRISE:
            return AlertScope(categories=None, enterprise=self.principal.enterprise)
        if self.role is Role.EMERGENCY:
            return AlertScope(categories=EMERGENCY_CATEGORIES, enterprise=None)
        return AlertScope(categories=None, enterprise=None)

    def can_see_alert(self, alert: Mapping[str, Any]) -> bool:
        scope = self.alert_scope()
        if scope.categories is not None and alert.get("category") not in scope.categories:
            return False
        return scope.enterprise is None or alert.get("enterprise") == scope.enterprise

    # ---- live stream ---------------------------------------------------------------------------------
    def live_kpi(self, park: str, data: Mapping[str, Any]) -> dict[str, Any] | None:
        """The part of a park's KPI message this caller may receive, or None."""
        if self.sees_all:
            return dict(data)
        if self.role is not Role.ENTERPRISE:
            return None
        ent_id = self.principal.enterprise
        enterprises = data.get("enterprises")
        if not isinstance(enterprises, dict) or ent_id not in enterprises:
            return None
        found = self.registry.enterprise(ent_id or "")
        if found is None or found[0].id != park:
            return None
        return {"v": data.get("v"), "ts": data.get("ts"), "park": park, "enterprises": {ent_id: enterprises[ent_id]}}
