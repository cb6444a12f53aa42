"""Alerts (energy) and safety events (safety, environment): list, get, acknowledge, delivery log.

Reads and writes the alert engine's SQLite store (`{var_dir}/alerts.sqlite`, the source of truth shared
with the alert workers); an acknowledgement is a lifecycle event the workers fan out to MQTT and webhooks.
Scoping goes through `api.access.Access.alert_scope`: an enterprise sees its own alerts and events only,
emergency management safety and environment events only (its `/alerts` answers 403), operations all;
an alert outside the caller's scope answers 404 like a missing one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from analytics.alerts.store import AlertConflict, AlertFilter, AlertNotFound, AlertStore
from api.access import Access
from api.deps import CallerDep, PageDep
from api.errors import ApiError, ErrorCode, forbidden
from api.models import PageOf
from parkmodel.ids import ID_PATTERN

# Year 9999: anything later is not a time, and SQLite integers stop at 2^63.
MAX_EPOCH_MS = 253_402_300_799_999

router = APIRouter(tags=["alerts"])

ENERGY = frozenset({"energy"})
SAFETY = frozenset({"safety", "environment"})
AlertId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$", description="alert id (uuid)")]
IdQuery = Query(pattern=f"^{ID_PATTERN}$")


class AlertPublic(BaseModel):
    """One alert or safety event (interfaces.md, "Alerts and safety events")."""

    id: str
    category: Literal["energy", "safety", "environment"]
    rule: str
    source: str
    severity: Literal["info", "warning", "critical"]
    level: int | None
    state: Literal["raised", "acknowledged", "cleared", "closed"]
    park: str
    enterprise: str | None
    device: str | None
    point: str | None
    location: str | None
    value: float | None
    limit: float | None
    message_zh: str | None
    message_en: str | None
    raised_at: int
    updated_at: int
    count: int
    acked_by: str | None
    acked_at: int | None
    ack_comment: str | None
    cleared_at: int | None
    closed_at: int | None
    escalated: bool


class AckRequest(BaseModel):
    comment: str = Field(default="", max_length=2000)


class Attempt(BaseModel):
    attempt: int
    ts: int
    ok: bool
    status: int | None
    error: str | None
    duration_ms: float | None


class Delivery(BaseModel):
    delivery_id: str
    target: str
    topic: str | None
    event: str
    state: Literal["pending", "delivered", "suppressed"]
    created_at: int
    delivered_at: int | None
    attempts: list[Attempt]


class HistoryEvent(BaseModel):
    seq: int
    event: str
    ts: int


def _store(request: Request) -> AlertStore:
    # Opened once in the app's lifespan (closed at shutdown); the API serves it without any alert worker.
    return request.app.state.alert_store  # type: ignore[no-any-return]


StoreDep = Annotated[AlertStore, Depends(_store)]


class Filters:
    """Query filters of the list routes."""

    def __init__(
        self,
        state: Annotated[Literal["raised", "acknowledged", "cleared", "closed"] | None, Query()] = None,
        severity: Annotated[Literal["info", "warning", "critical"] | None, Query()] = None,
        park: Annotated[str | None, IdQuery] = None,
        enterprise: Annotated[str | None, IdQuery] = None,
        since: Annotated[int | None, Query(ge=0, le=MAX_EPOCH_MS, description="updated at or after, epoch ms")] = None,
        until: Annotated[int | None, Query(ge=0, le=MAX_EPOCH_MS, description="raised before, epoch ms")] = None,
    ) -> None:
        self.state, self.severity, self.park, self.enterprise = state, severity, park, enterprise
        self.since, self.until = since, until


FiltersDep = Annotated[Filters, Depends()]


def _categories(access: Access, collection: frozenset[str]) -> tuple[str, ...]:
    scope = access.alert_scope()
    allowed = collection if scope.categories is None else collection & scope.categories
    if not allowed:
        raise forbidden(f"role {access.role.value!r} does not see {'alerts' if collection == ENERGY else 'these'}")
    return tuple(sorted(allowed))


def _list(access: Access, store: AlertStore, collection: frozenset[str], f: Filters, limit: int,
          offset: int) -> PageOf[AlertPublic]:
    categories = _categories(access, collection)
    scope = access.alert_scope()
    enterprise = f.enterprise
    if scope.enterprise is not None:
        if enterprise not in (None, scope.enterprise):
            return PageOf[AlertPublic](items=[], total=0, limit=limit, offset=offset)
        enterprise = scope.enterprise
    items, total = store.list(AlertFilter(categories=categories, state=f.state, severity=f.severity, park=f.park,
                                          enterprise=enterprise, since=f.since, until=f.until, limit=limit,
                                          offset=offset))
    return PageOf[AlertPublic](items=[AlertPublic(**a) for a in items], total=total, limit=limit, offset=offset)


def _one(access: Access, store: AlertStore, collection: frozenset[str], alert_id: str) -> dict[str, Any]:
    alert = store.get(alert_id)
    if alert is None or alert["category"] not in collection or not access.can_see_alert(alert):
        raise ApiError(ErrorCode.NOT_FOUND, f"alert {alert_id!r} not found")
    return alert


def _ack(access: Access, store: AlertStore, collection: frozenset[str], alert_id: str, body: AckRequest
         ) -> AlertPublic:
    _one(access, store, collection, alert_id)
    try:
        return AlertPublic(**store.acknowledge(alert_id, access.principal.subject, body.comment))
    except AlertNotFound:
        raise ApiError(ErrorCode.NOT_FOUND, f"alert {alert_id!r} not found") from None
    except AlertConflict as exc:
        raise ApiError(ErrorCode.CONFLICT, str(exc)) from None


def _routes(prefix: str, collection: frozenset[str], what: str) -> None:
    # Route functions are sync: FastAPI runs them in its thread pool, so SQLite never blocks the event loop.
    @router.get(prefix, summary=f"List {what}", name=f"list_{what}")
    def list_items(access: CallerDep, store: StoreDep, filters: FiltersDep, page: PageDep) -> PageOf[AlertPublic]:
        """Newest first; filters state, severity, park, enterprise, since, until; paged by limit/offset."""
        return _list(access, store, collection, filters, page.limit, page.offset)

    @router.get(prefix + "/{alert_id}", summary=f"Get one of the {what}", name=f"get_{what}")
    def get_item(access: CallerDep, store: StoreDep, alert_id: AlertId) -> AlertPublic:
        return AlertPublic(**_one(access, store, collection, alert_id))

    @router.post(prefix + "/{alert_id}/ack", summary=f"Acknowledge one of the {what}", name=f"ack_{what}")
    def ack_item(access: CallerDep, store: StoreDep, alert_id: AlertId,
                 body: Annotated[AckRequest, Body()] = AckRequest()) -> AlertPublic:
        """Acknowledge (by the caller, with a comment); a cleared alert closes. 409 if already acknowledged."""
        return _ack(access, store, collection, alert_id, body)

    @router.get(prefix + "/{alert_id}/deliveries", summary=f"Delivery log of one of the {what}",
                name=f"deliveries_{what}")
    def deliveries(access: CallerDep, store: StoreDep, alert_id: AlertId) -> list[Delivery]:
        """Every notification (MQTT, webhooks) with every attempt."""
        _one(access, store, collection, alert_id)
        return [Delivery(**d) for d in store.deliveries(alert_id)]

    @router.get(prefix + "/{alert_id}/history", summary=f"Lifecycle history of one of the {what}",
                name=f"history_{what}")
    def history(access: CallerDep, store: StoreDep, alert_id: AlertId) -> list[HistoryEvent]:
        _one(access, store, collection, alert_id)
        return [HistoryEvent(**e) for e in store.history(alert_id)]


_routes("/alerts", ENERGY, "alerts")
_routes("/safety-events", SAFETY, "safety_events")
