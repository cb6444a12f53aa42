"""A real webhook receiver for tests: a minimal HTTP/1.1 server on asyncio streams (no framework).

It records every request (headers, body, signature check) and can be stopped and restarted on the
same port to play a receiver that is down for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import orjson

from analytics.alerts.delivery import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signed: bool

    @property
    def json(self) -> dict[str, Any]:
        return orjson.loads(self.body)  # type: ignore[no-any-return]

    @property
    def delivery_id(self) -> str:
        return self.headers[DELIVERY_HEADER.lower()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WebhookReceiver:
    """Records signed webhook calls; `status` is what it answers."""

    secret: bytes
    port: int = field(default_factory=free_port)
    status: int = 200
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None
    _conns: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._conns):
                task.cancel()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                path = request_line.decode().split(" ")[1]
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if self.status == 200:
                    ok = verify(self.secret, body, headers.get(SIGNATURE_HEADER.lower()))
                    assert TIMESTAMP_HEADER.lower() in headers
                    self.received.append(Received(path, headers, body, ok))
                    self.arrived.set()
                reply = b"ok" if self.status == 200 else b"unavailable"
                writer.write(f"HTTP/1.1 {self.status} X\r\nContent-Length: {len(reply)}\r\n\r\n".encode() + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._conns.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def wait_for(self, predicate: Any, n: int = 1, within: float = 10.0) -> list[Received]:
        """Wait until at least `n` received calls satisfy `predicate`; return them."""
        async with asyncio.timeout(within):
            while True:
                hits = [r for r in self.received if predicate(r)]
                if len(hits) >= n:
                    return hits
                self.arrived.clear()
                await self.arrived.wait()
