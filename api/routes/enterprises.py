"""Enterprises of the registry."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import EnterpriseDep, PageDep, RegistryDep
from api.models import DevicePublic, EnterprisePublic, PageOf

router = APIRouter(prefix="/enterprises", tags=["enterprises"])


@router.get("/{enterprise_id}")
def get_enterprise(found: EnterpriseDep) -> EnterprisePublic:
    park, ent = found
    return EnterprisePublic.of(park, ent)


@router.get("/{enterprise_id}/devices")
def list_enterprise_devices(found: EnterpriseDep, registry: RegistryDep, page: PageDep) -> PageOf[DevicePublic]:
    _, ent = found
    refs = [registry.device(d.id) for g in ent.gateways for d in g.devices]
    devices = [DevicePublic.of(r) for r in refs if r is not None]
    return PageOf[DevicePublic](
        items=devices[page.offset:page.offset + page.limit], total=len(devices), limit=page.limit,
        offset=page.offset,
    )
