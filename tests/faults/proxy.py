"""A TCP proxy a fault scenario can switch between a plain relay, refusing, and a black hole.

`up`: relay both ways. `down`: new connections are closed at once and open ones are cut (the service
looks stopped). `blackhole`: nothing moves any more in either direction, on open and on new connections,
and nothing is closed either — a network partition as TCP sees it: bytes wait (as if retransmitted)
and flow again when the proxy goes back `up`, unless an end gave up on its connection meanwhile.
(Adapted from tests/ingest/proxy.py, whose black hole drops only InfluxDB's answers.)
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal, Self

Mode = Literal["up", "down", "blackhole"]


class TcpProxy:
    """`async with TcpProxy(host, port) as proxy:` listens on `proxy.port` (loopback) and relays to host:port.

    Args:
        upstream_host: where to relay to.
        upstream_port: its port.
        mode: the initial mode.
    """

    def __init__(self, upstream_host: str, upstream_port: int, mode: Mode = "up") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode: Mode = mode
        self.port = 0
        self.connections_seen = 0
        self._flowing = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._set_flow()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._cut()
        await self._server.wait_closed()

    async def set_mode(self, mode: Mode) -> None:
        """Switch mode; `down` cuts open connections, `blackhole` and `up` keep them."""
        self.mode = mode
        self._set_flow()
        if mode == "down":
            await self._cut()

    def _set_flow(self) -> None:
        if self.mode == "blackhole":
            self._flowing.clear()
        else:
            self._flowing.set()

    async def _cut(self) -> None:
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections_seen += 1
        if self.mode == "down":
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._flowing.wait()  # a connection made during a partition: its SYN "gets through" later
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
                tg.create_task(self._pipe(reader, up_writer))
                tg.create_task(self._pipe(up_reader, writer))
        except* OSError:
            pass  # either side closed
        finally:
            up_writer.close()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while True:
            await self._flowing.wait()
            data = await src.read(65536)
            if not data:
                break
            await self._flowing.wait()  # read during a partition: held until it heals
            dst.write(data)
            await dst.drain()
        raise ConnectionResetError("peer closed")  # ends the other direction too
