"""WebSocket `/live`: KPI frames, alerts and safety events as they arrive from MQTT, each only to callers
allowed to see it, filtered further by the parks a client asks for.

Authentication: `Authorization: Bearer ...` (session token or API key) on the upgrade request, or, from a
browser (which cannot set headers on a WebSocket), a first frame `{"type": "auth", "token": "..."}` sent within
`AUTH_TIMEOUT_S` of connecting. Credentials never travel in the URL, which proxies and access logs record
(a `?token=` is ignored). Without a valid credential the server sends an `unauthorized` error frame and closes
with code 4401; a credential that expires or is revoked while connected ends the connection the same way.

Client → server: `{"subscribe": ["park-id", ...]}` or `{"unsubscribe": [...]}` (default: every park it sees).
Server → client: `{"type": "kpi", "park": id, "data": {...}}` (enterprise callers: only their enterprise's
entry under `data.enterprises`, never the park total), `{"type": "alert"|"safety", "event": ..., "alert": {...}}`,
`{"type": "subscribed", "parks": [...]}`, `{"type": "error", "error": {"code": ..., "message": ...}}`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from api.access import Access
from api.auth.service import Authenticator
from api.errors import ErrorCode, error_body
from api.kpi_feed import KpiFeed, KpiFrame
from api.metrics import ApiMetrics
from api.registry_source import RegistrySource

router = APIRouter(tags=["live"])
log = logging.getLogger(__name__)

MAX_CLIENT_MESSAGE = 16 * 1024
CLOSE_UNAUTHORIZED = 4401
RECHECK_CREDENTIAL_S = 30.0
#: How long a client without an Authorization header has to send its `{"type": "auth"}` frame.
AUTH_TIMEOUT_S = 5.0
AUTH_HINT = ('send `Authorization: Bearer <token>` or, as the first message, {"type": "auth", "token": "<session '
             'token or API key>"}')


class ParkFilter:
    """Which parks one client wants; None means every park it may see.

    Args:
        all_parks: the park ids the caller may see.
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


def visible_frame(access: Access, frame: KpiFrame) -> dict[str, Any] | None:
    """What of `frame` this caller may receive, as a WebSocket frame; None when nothing."""
    if frame.kind == "kpi":
        data = access.live_kpi(frame.park, frame.data)
        return None if data is None else {"type": "kpi", "park": frame.park, "data": data}
    alert = frame.data.get("alert")
    if not isinstance(alert, dict) or not access.can_see_alert(alert):
        return None
    return {"type": frame.kind, "event": frame.data.get("event"), "alert": alert}


async def _send(ws: WebSocket, obj: dict[str, Any]) -> None:
    await ws.send_text(orjson.dumps(obj).decode())


async def _pump(ws: WebSocket, feed: KpiFeed, queue: asyncio.Queue[KpiFrame], filt: ParkFilter,
                access: Access) -> None:
    async def forward(frame: KpiFrame) -> None:
        if filt.wants(frame.park):
            out = visible_frame(access, frame)
            if out is not None:
                await _send(ws, out)

    for frame in feed.snapshot():  # what is known already, so a new page is not blank for 2 s
        await forward(frame)
    while True:
        await forward(await queue.get())


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


class CredentialEnded(Exception):
    """The credential expired or was revoked while connected."""


async def _watch(auth: Authenticator, credential: str) -> None:
    while True:
        await asyncio.sleep(RECHECK_CREDENTIAL_S)
        if await auth.principal(credential) is None:
            raise CredentialEnded


def _header_credential(ws: WebSocket) -> str | None:
    header = ws.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def _auth_frame(ws: WebSocket) -> str | None:
    """The token of the client's first frame `{"type": "auth", "token": ...}`; None if it sends anything else
    or nothing within `AUTH_TIMEOUT_S`."""
    try:
        async with asyncio.timeout(AUTH_TIMEOUT_S):
            text = await ws.receive_text()
    except TimeoutError:
        return None
    if len(text) > MAX_CLIENT_MESSAGE:
        return None
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict) or message.get("type") != "auth":
        return None
    token = message.get("token")
    return token if isinstance(token, str) and token else None


async def _refuse(ws: WebSocket, message: str) -> None:
    await _send(ws, _error(ErrorCode.UNAUTHORIZED, message))
    await ws.close(code=CLOSE_UNAUTHORIZED, reason="unauthorized")


@router.websocket("/live")
async def live(ws: WebSocket) -> None:
    feed: KpiFeed = ws.app.state.kpi_feed
    source: RegistrySource = ws.app.state.registry_source
    metrics: ApiMetrics = ws.app.state.metrics
    auth: Authenticator = ws.app.state.auth
    await ws.accept()
    try:
        credential = _header_credential(ws) or await _auth_frame(ws)
    except WebSocketDisconnect:
        return
    principal = await auth.principal(credential) if credential else None
    if principal is None or credential is None:
        await _refuse(ws, f"unauthorized: {AUTH_HINT}")
        return
    access = Access(principal, source.current())
    metrics.websocket_clients.inc()
    filt = ParkFilter([p.id for p in access.parks()])
    try:
        async with feed.subscribe() as queue, asyncio.TaskGroup() as tg:
            # The loops run until the client goes; its disconnect fails one and the group cancels the others.
            tg.create_task(_listen(ws, filt), name="ws-listen")
            tg.create_task(_pump(ws, feed, queue, filt, access), name="ws-pump")
            tg.create_task(_watch(auth, credential), name="ws-credential")
    except* WebSocketDisconnect:
        pass
    except* CredentialEnded:
        try:
            await _refuse(ws, "the token or key expired or was revoked; sign in again")
        except (RuntimeError, OSError, WebSocketDisconnect):
            pass
    except* (RuntimeError, OSError) as group:  # sending on a socket the client already closed
        log.debug("websocket ended: %r", group.exceptions)
    finally:
        metrics.websocket_clients.dec()
