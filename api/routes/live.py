"""WebSocket `/live`: KPI frames as they arrive from MQTT, filtered by the parks a client asks for.

Client → server: `{"subscribe": ["park-id", ...]}` or `{"unsubscribe": [...]}` (default: every park).
Server → client: `{"type": "kpi", "park": id, "data": {...}}`, `{"type": "subscribed", "parks": [...]}`,
`{"type": "error", "error": {"code": ..., "message": ...}}`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from api.errors import ErrorCode, error_body
from api.kpi_feed import KpiFeed, KpiFrame
from api.metrics import ApiMetrics
from parkmodel.registry import Registry

router = APIRouter(tags=["live"])
log = logging.getLogger(__name__)

MAX_CLIENT_MESSAGE = 16 * 1024


class ParkFilter:
    """Which parks one client wants; None means every park.

    Args:
        all_parks: the park ids of the registry.
    """

    def __init__(self, all_parks: list[str]) -> None:
        self._all = all_parks
        self.parks: set[str] | None = None

    def wants(self, park: str) -> bool:
        return self.parks is None or park in self.parks

    def apply(self, message: Any) -> dict[str, Any]:
        """Apply a subscribe/unsubscribe message; returns the reply frame."""
        if not isinstance(message, dict) or not ({"subscribe", "unsubscribe"} & message.keys()):
            return _error(ErrorCode.INVALID_REQUEST, 'expected {"subscribe": [park ids]} or {"unsubscribe": [...]}')
        for key in ("subscribe", "unsubscribe"):
            ids = message.get(key)
            if ids is None:
                continue
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                return _error(ErrorCode.INVALID_REQUEST, f"{key} must be a list of park ids")
            unknown = [i for i in ids if i not in self._all]
            if unknown:
                return _error(ErrorCode.NOT_FOUND, f"unknown park ids: {', '.join(repr(u[:64]) for u in unknown)}")
            if key == "subscribe":
                self.parks = set(ids) if self.parks is None else self.parks | set(ids)
            else:
                current = set(self._all) if self.parks is None else self.parks
                self.parks = current - set(ids)
        parks = self._all if self.parks is None else [p for p in self._all if p in self.parks]
        return {"type": "subscribed", "parks": parks}


def _error(code: ErrorCode, message: str) -> dict[str, Any]:
    return {"type": "error", **error_body(code, message)}


def _frame(frame: KpiFrame) -> dict[str, Any]:
    return {"type": "kpi", "park": frame.park, "data": frame.data}


async def _send(ws: WebSocket, obj: dict[str, Any]) -> None:
    await ws.send_text(orjson.dumps(obj).decode())


async def _pump(ws: WebSocket, feed: KpiFeed, queue: asyncio.Queue[KpiFrame], filt: ParkFilter) -> None:
    for frame in feed.snapshot():  # what is known already, so a new page is not blank for 2 s
        if filt.wants(frame.park):
            await _send(ws, _frame(frame))
    while True:
        frame = await queue.get()
        if filt.wants(frame.park):
            await _send(ws, _frame(frame))


async def _listen(ws: WebSocket, filt: ParkFilter) -> None:
    while True:
        text = await ws.receive_text()
        if len(text) > MAX_CLIENT_MESSAGE:
            await _send(ws, _error(ErrorCode.INVALID_REQUEST, f"message longer than {MAX_CLIENT_MESSAGE} bytes"))
            continue
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            await _send(ws, _error(ErrorCode.INVALID_REQUEST, "message is not JSON"))
            continue
        await _send(ws, filt.apply(message))


@router.websocket("/live")
async def live(ws: WebSocket) -> None:
    feed: KpiFeed = ws.app.state.kpi_feed
    registry: Registry = ws.app.state.registry
    metrics: ApiMetrics = ws.app.state.metrics
    await ws.accept()
    metrics.websocket_clients.inc()
    filt = ParkFilter([p.id for p in registry.parks])
    try:
        async with feed.subscribe() as queue, asyncio.TaskGroup() as tg:
            # Both loops run until the client goes; its disconnect fails one and the group cancels the other.
            tg.create_task(_listen(ws, filt), name="ws-listen")
            tg.create_task(_pump(ws, feed, queue, filt), name="ws-pump")
    except* WebSocketDisconnect:
        pass
    except* (RuntimeError, OSError) as group:  # sending on a socket the client already closed
        log.debug("websocket ended: %r", group.exceptions)
    finally:
        metrics.websocket_clients.dec()
