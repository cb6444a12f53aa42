"""The control channel: a small HTTP/1.1 JSON server on loopback, in the simulator's own event loop.

Routes (interfaces.md): POST /set {"device","point","value"}, POST /fault {"device","fault"}, GET /state,
and GET /layout. Bad input gets a 4xx with {"error": "..."} saying what was wrong and what is expected.
Raw asyncio streams keep it free of threads and signal handlers; one request per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Protocol

from simulators.faults import FaultError

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
READ_TIMEOUT_S = 10.0


class ControlTarget(Protocol):
    """What the control server drives (implemented by `SimulatedPark`)."""

    def set_point(self, device: str, point: str, value: float) -> None: ...
    def inject(self, device: str, fault: str) -> None: ...
    def state(self) -> dict[str, Any]: ...
    def layout_dict(self) -> dict[str, Any]: ...


class UnknownDeviceError(LookupError):
    """A device id that the running simulator does not simulate."""

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0]) if self.args else "unknown device"


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _require(body: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in body:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"missing key {key!r}: expected {what}")
    value = body[key]
    if not isinstance(value, kind):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"key {key!r} is {value!r}: expected {what}")
    return value


class ControlServer:
    """HTTP JSON control of a simulated park.

    Args:
        target: the park it drives.
        host: address to listen on (loopback).
        port: port (0 = any free port; see `port` after `start`).
    """

    def __init__(self, target: ControlTarget, host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = target
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._routes: dict[tuple[str, str], Callable[[dict[str, Any]], dict[str, Any]]] = {
            ("GET", "/state"): lambda _b: self.target.state(),
            ("GET", "/layout"): lambda _b: self.target.layout_dict(),
            ("POST", "/set"): self._set,
            ("POST", "/fault"): self._fault,
        }

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("simulator control on %s", self.url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _set(self, body: dict[str, Any]) -> dict[str, Any]:
        device = _require(body, "device", str, "a device id (string)")
        point = _require(body, "point", str, "a point name (string), e.g. 'active_power_kw'")
        value = _require(body, "value", (int, float, bool), "a number")
        self.target.set_point(device, point, float(value))
        return {"ok": True, "device": device, "point": point, "value": float(value)}

    def _fault(self, body: dict[str, Any]) -> dict[str, Any]:
        device = _require(body, "device", str, "a device id (string)")
        fault = _require(body, "fault", str, "a fault name (string)")
        self.target.inject(device, fault)
        return {"ok": True, "device": device, "fault": fault}

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                status, payload = await asyncio.wait_for(self._respond(reader), READ_TIMEOUT_S)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                return
            except Exception as exc:  # a bug or an input nobody foresaw: answer, never leave the client hanging
                log.exception("simulator control request failed")
                status = HTTPStatus.INTERNAL_SERVER_ERROR
                payload = {"error": f"internal error: {type(exc).__name__}: {exc}"}
            data = json.dumps(payload, ensure_ascii=False).encode()
            head = (f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n")
            with contextlib.suppress(ConnectionError):
                writer.write(head.encode() + data)
                await writer.drain()
        finally:
            writer.close()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[HTTPStatus, dict[str, Any]]:
        try:
            method, path, body = await self._read_request(reader)
            route = self._routes.get((method, path))
            if route is None:
                allowed = [m for (m, p) in self._routes if p == path]
                if allowed:
                    raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} accepts {', '.join(allowed)}, not {method}")
                routes = ", ".join(f"{m} {p}" for m, p in self._routes)
                raise HttpError(HTTPStatus.NOT_FOUND, f"no route {method} {path}; routes: {routes}")
            return HTTPStatus.OK, route(body)
        except HttpError as exc:
            return exc.status, {"error": exc.message}
        except UnknownDeviceError as exc:
            return HTTPStatus.NOT_FOUND, {"error": str(exc)}
        except FaultError as exc:
            return HTTPStatus.BAD_REQUEST, {"error": str(exc)}

    async def _read_request(self, reader: asyncio.StreamReader) -> tuple[str, str, dict[str, Any]]:
        request_line = (await reader.readline()).decode("latin-1").strip()
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise HttpError(HTTPStatus.BAD_REQUEST, f"malformed request line {request_line!r}")
        method, target, _version = parts
        length = 0
        while True:
            line = (await reader.readline()).decode("latin-1")
            if line in ("\r\n", "\n", ""):
                break
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    raise HttpError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {value.strip()!r}") from None
        if length < 0:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {length}: expected 0 or more bytes")
        if length > MAX_BODY:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body of {length} bytes; at most {MAX_BODY}")
        raw = await reader.readexactly(length) if length else b""
        body: dict[str, Any] = {}
        if method == "POST":
            try:
                parsed = json.loads(raw or b"null")
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise HttpError(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {exc}") from None
            if not isinstance(parsed, dict):
                raise HttpError(HTTPStatus.BAD_REQUEST, "body must be a JSON object, e.g. "
                                '{"device": "ot-pvc-grid", "fault": "timeout"}')
            body = parsed
        return method, target.split("?", 1)[0], body
