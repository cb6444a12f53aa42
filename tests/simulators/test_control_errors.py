"""The control server answers every request, even ones it cannot parse, and closes the connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from simulators import SimulatedPark
from tests.simulators.helpers import NOON, balance_registry

pytestmark = pytest.mark.integration


@pytest.fixture
async def park(uid: str) -> AsyncIterator[SimulatedPark]:
    async with SimulatedPark(balance_registry(uid), speed=60, start=NOON, control_port=0, tick_s=0.1) as p:
        yield p


async def _exchange(park: SimulatedPark, request: bytes) -> tuple[int, dict[str, object]]:
    """Send raw bytes; read the whole answer (the server must close the connection, or this times out)."""
    assert park.control is not None
    reader, writer = await asyncio.open_connection(park.control.host, park.control.port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(5):
            raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def test_negative_content_length_gets_a_clear_400(park: SimulatedPark) -> None:
    status, body = await _exchange(park, b"POST /set HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
    assert status == 400
    assert "Content-Length -5" in str(body["error"])


async def test_unexpected_error_gets_a_500_and_the_connection_closed(park: SimulatedPark) -> None:
    # A header line longer than the stream's 64 KiB limit: readline raises ValueError, which no route expects.
    status, body = await _exchange(park, b"GET /state HTTP/1.1\r\nX-Long: " + b"a" * 100_000 + b"\r\n\r\n")
    assert status == 500
    assert "internal error" in str(body["error"])
    status, _ = await _exchange(park, b"GET /state HTTP/1.1\r\n\r\n")  # and the server still serves
    assert status == 200
