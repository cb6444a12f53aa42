"""Parks of the registry (each caller sees the parks its scope reaches)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CallerDep, PageDep, ParkDep
from api.models import EnterprisePublic, PageOf, ParkPublic

router = APIRouter(prefix="/parks", tags=["parks"])


@router.get("")
def list_parks(access: CallerDep, page: PageDep) -> PageOf[ParkPublic]:
    """The parks the caller may see, in registry order."""
    parks = access.parks()
    return PageOf[ParkPublic](items=[ParkPublic.of(p) for p in page.slice(parks)], total=len(parks),
                              limit=page.limit, offset=page.offset)


@router.get("/{park_id}")
def get_park(park: ParkDep) -> ParkPublic:
    return ParkPublic.of(park)


@router.get("/{park_id}/enterprises")
def list_park_enterprises(park: ParkDep, access: CallerDep, page: PageDep) -> PageOf[EnterprisePublic]:
    ents = access.enterprises(park)
    return PageOf[EnterprisePublic](items=[EnterprisePublic.of(park, e) for e in page.slice(ents)],
                                    total=len(ents), limit=page.limit, offset=page.offset)
