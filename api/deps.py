"""Dependencies as `Annotated` aliases, so route signatures stay short and lookups (and later, scoping by
who is asking) live in one place."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from api.errors import not_found
from api.influx import InfluxReader
from api.kpi_feed import KpiFeed
from api.metrics import ApiMetrics
from parkmodel.ids import ID_PATTERN
from parkmodel.registry import DeviceRef, Enterprise, Park, Registry

IdPath = Path(pattern=f"^{ID_PATTERN}$", description="contract id")


def _registry(request: Request) -> Registry:
    return request.app.state.registry  # type: ignore[no-any-return]


def _influx(request: Request) -> InfluxReader:
    return request.app.state.influx  # type: ignore[no-any-return]


def _feed(request: Request) -> KpiFeed:
    return request.app.state.kpi_feed  # type: ignore[no-any-return]


def _metrics(request: Request) -> ApiMetrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


RegistryDep = Annotated[Registry, Depends(_registry)]
InfluxDep = Annotated[InfluxReader, Depends(_influx)]
FeedDep = Annotated[KpiFeed, Depends(_feed)]
MetricsDep = Annotated[ApiMetrics, Depends(_metrics)]


def _park(registry: RegistryDep, park_id: Annotated[str, IdPath]) -> Park:
    park = registry.park(park_id)
    if park is None:
        raise not_found("park", park_id)
    return park


def _enterprise(registry: RegistryDep, enterprise_id: Annotated[str, IdPath]) -> tuple[Park, Enterprise]:
    found = registry.enterprise(enterprise_id)
    if found is None:
        raise not_found("enterprise", enterprise_id)
    return found


def _device(registry: RegistryDep, device_id: Annotated[str, IdPath]) -> DeviceRef:
    ref = registry.device(device_id)
    if ref is None:
        raise not_found("device", device_id)
    return ref


ParkDep = Annotated[Park, Depends(_park)]
EnterpriseDep = Annotated[tuple[Park, Enterprise], Depends(_enterprise)]
DeviceDep = Annotated[DeviceRef, Depends(_device)]


class Page:
    """Paging of list routes."""

    def __init__(
        self,
        limit: Annotated[int, Query(ge=1, le=1000, description="items per page")] = 100,
        offset: Annotated[int, Query(ge=0, description="items to skip")] = 0,
    ) -> None:
        self.limit = limit
        self.offset = offset


PageDep = Annotated[Page, Depends()]
