"""Enterprises of the registry."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CallerDep, EnterpriseDep, PageDep
from api.models import DevicePublic, EnterprisePublic, PageOf

router = APIRouter(prefix="/enterprises", tags=["enterprises"])


@router.get("/{enterprise_id}")
def get_enterprise(found: EnterpriseDep) -> EnterprisePublic:
    park, ent = found
    return EnterprisePublic.of(park, ent)


@router.get("/{enterprise_id}/devices")
def list_enterprise_devices(found: EnterpriseDep, access: CallerDep, page: PageDep) -> PageOf[DevicePublic]:
    """The enterprise's devices the caller may see (emergency management: safety devices only)."""
    devices = [DevicePublic.of(r) for r in access.devices(found[1])]
    return PageOf[DevicePublic](items=page.slice(devices), total=len(devices), limit=page.limit, offset=page.offset)
