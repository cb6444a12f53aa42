"""Dependencies as `Annotated` aliases, so route signatures stay short and authentication, lookups and
scoping by who is asking live in this one place (the policy itself is `api.access.Access`)."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.access import Access
from api.auth.principal import Principal
from api.auth.service import Authenticator
from api.errors import unauthorized
from api.influx import InfluxReader
from api.kpi_feed import KpiFeed
from api.metrics import ApiMetrics
from parkmodel.ids import ID_PATTERN
from parkmodel.registry import DeviceRef, Enterprise, Park, Registry

T = TypeVar("T")
IdPath = Path(pattern=f"^{ID_PATTERN}$", description="contract id")
bearer = HTTPBearer(auto_error=False, description="API key (`sp_...`) or session token from /api/v1/auth/login")


def _registry(request: Request) -> Registry:
    return request.app.state.registry_source.current()  # type: ignore[no-any-return]


def _influx(request: Request) -> InfluxReader:
    return request.app.state.influx  # type: ignore[no-any-return]


def _feed(request: Request) -> KpiFeed:
    return request.app.state.kpi_feed  # type: ignore[no-any-return]


def _metrics(request: Request) -> ApiMetrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


def _authenticator(request: Request) -> Authenticator:
    return request.app.state.auth  # type: ignore[no-any-return]


RegistryDep = Annotated[Registry, Depends(_registry)]
InfluxDep = Annotated[InfluxReader, Depends(_influx)]
FeedDep = Annotated[KpiFeed, Depends(_feed)]
MetricsDep = Annotated[ApiMetrics, Depends(_metrics)]
AuthDep = Annotated[Authenticator, Depends(_authenticator)]


async def _principal(
    auth: AuthDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    if credentials is None:
        raise unauthorized()
    principal = await auth.principal(credentials.credentials)
    if principal is None:
        raise unauthorized("the token or key is invalid, expired or revoked")
    return principal


def _access(registry: RegistryDep, principal: Annotated[Principal, Depends(_principal)]) -> Access:
    return Access(principal, registry)


# Every versioned route depends on this (router-level), so none can forget authentication.
CallerDep = Annotated[Access, Depends(_access)]


def _admin(access: CallerDep) -> Access:
    access.require_admin()
    return access


AdminDep = Annotated[Access, Depends(_admin)]


def _park(access: CallerDep, park_id: Annotated[str, IdPath]) -> Park:
    return access.park(park_id)


def _enterprise(access: CallerDep, enterprise_id: Annotated[str, IdPath]) -> tuple[Park, Enterprise]:
    return access.enterprise(enterprise_id)


def _device(access: CallerDep, device_id: Annotated[str, IdPath]) -> DeviceRef:
    return access.device(device_id)


def _park_kpi(access: CallerDep, park_id: Annotated[str, IdPath]) -> Park:
    return access.park_kpi(park_id)


def _enterprise_kpi(access: CallerDep, enterprise_id: Annotated[str, IdPath]) -> tuple[Park, Enterprise]:
    return access.enterprise_kpi(enterprise_id)


ParkDep = Annotated[Park, Depends(_park)]
EnterpriseDep = Annotated[tuple[Park, Enterprise], Depends(_enterprise)]
DeviceDep = Annotated[DeviceRef, Depends(_device)]
ParkKpiDep = Annotated[Park, Depends(_park_kpi)]
EnterpriseKpiDep = Annotated[tuple[Park, Enterprise], Depends(_enterprise_kpi)]


class Page:
    """Paging of list routes."""

    def __init__(
        self,
        limit: Annotated[int, Query(ge=1, le=1000, description="items per page")] = 100,
        offset: Annotated[int, Query(ge=0, le=1_000_000, description="items to skip")] = 0,
    ) -> None:
        self.limit = limit
        self.offset = offset

    def slice(self, items: list[T]) -> list[T]:
        return items[self.offset:self.offset + self.limit]


PageDep = Annotated[Page, Depends()]
