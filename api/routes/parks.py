"""Parks of the registry."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import PageDep, ParkDep, RegistryDep
from api.models import EnterprisePublic, PageOf, ParkPublic

router = APIRouter(prefix="/parks", tags=["parks"])


@router.get("")
def list_parks(registry: RegistryDep, page: PageDep) -> PageOf[ParkPublic]:
    """Every park, in registry order."""
    parks = registry.parks
    return PageOf[ParkPublic](
        items=[ParkPublic.of(p) for p in parks[page.offset:page.offset + page.limit]],
        total=len(parks), limit=page.limit, offset=page.offset,
    )


@router.get("/{park_id}")
def get_park(park: ParkDep) -> ParkPublic:
    return ParkPublic.of(park)


@router.get("/{park_id}/enterprises")
def list_park_enterprises(park: ParkDep, page: PageDep) -> PageOf[EnterprisePublic]:
    ents = park.enterprises
    return PageOf[EnterprisePublic](
        items=[EnterprisePublic.of(park, e) for e in ents[page.offset:page.offset + page.limit]],
        total=len(ents), limit=page.limit, offset=page.offset,
    )
