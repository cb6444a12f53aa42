"""A TCP proxy in front of InfluxDB that a test can switch off, on, or into a black hole.

`down`: new connections are closed at once and open ones are cut (InfluxDB looks unreachable).
`blackhole`: requests reach InfluxDB but its answers never come back (a write lands, the writer never
knows). `up`: a plain relay.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

Mode = Literal["up", "down", "blackhole"]


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int, mode: Mode = "up") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode: Mode = mode
        self.port = 0
        self.requests_seen = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._cut()
        await self._server.wait_closed()

    async def set_mode(self, mode: Mode) -> None:
        self.mode = mode
        await self._cut()

    async def _cut(self) -> None:
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self.mode == "down":
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._relay(reader, writer)
        except asyncio.CancelledError:
            pass  # cut by set_mode or exit
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            return
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._pipe(reader, up_writer, count=True))
                tg.create_task(self._pipe(up_reader, writer, drop=self.mode == "blackhole"))
        except* OSError:
            pass  # either side closed
        finally:
            up_writer.close()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, count: bool = False,
                    drop: bool = False) -> None:
        while data := await src.read(65536):
            if count and data[:5] in (b"POST ", b"GET /"):
                self.requests_seen += 1
            if not drop:
                dst.write(data)
                await dst.drain()
        raise ConnectionResetError("peer closed")  # ends the other direction too
