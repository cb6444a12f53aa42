"""Helpers for ingest tests: settings for the test services, InfluxDB queries, MQTT publishing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt
import httpx
import orjson

from deploy.services import RunningService
from parkmodel.codec import telemetry_payload
from smartpark.config import Settings, load_settings

TEST_SESSION_EXPIRY_S = 120  # sessions of finished tests must not queue everything for ever


def make_settings(broker: RunningService, influx_url: str, db: str, uid: str, **ingest: Any) -> Settings:
    return load_settings(
        None,
        mqtt={"host": broker.host, "port": broker.port},
        influx={"url": influx_url, "database": db, "timeout_s": 5},
        ingest={"group": f"g{uid}", "client_id": f"ingest-{uid}", "batch_interval_s": 0.05, **ingest},
    )


def now_ms() -> int:
    return int(time.time() * 1000)


async def query(influx_url: str, db: str, q: str) -> list[dict[str, Any]]:
    """Rows of an InfluxQL query (all series concatenated), each a dict column -> value, plus tags."""
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{influx_url}/query", params={"db": db, "q": q, "epoch": "ms"})
    r.raise_for_status()
    rows: list[dict[str, Any]] = []
    for result in r.json()["results"]:
        if "error" in result:
            raise AssertionError(result["error"])
        for series in result.get("series", []):
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                row.update(series.get("tags", {}))
                rows.append(row)
    return rows


async def count_points(influx_url: str, db: str, measurement: str = "telemetry", field: str = "active_power_kw") -> int:
    rows = await query(influx_url, db, f'SELECT count("{field}") FROM "{measurement}"')
    return int(rows[0]["count"]) if rows else 0


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def mqtt_client(broker: RunningService, **kwargs: Any) -> AsyncIterator[aiomqtt.Client]:
    client = aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5, **kwargs)
    client.pending_calls_threshold = 10_000  # tests publish in bursts on purpose
    async with client:
        yield client


async def publish_telemetry(client: aiomqtt.Client, topic: str, seq: int, points: list[tuple[int, dict[str, float]]]
                            ) -> None:
    await client.publish(topic, telemetry_payload(seq, points), qos=1)


class DeadLetters:
    """Collects dead letters whose original topic contains `marker` (this test's uid)."""

    def __init__(self, client: aiomqtt.Client, marker: str) -> None:
        self.client = client
        self.marker = marker
        self.items: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> DeadLetters:
        await self.client.subscribe("sp/v1/_deadletter/#", qos=1)
        self._task = asyncio.create_task(self._collect(), name="dead-letters")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    async def _collect(self) -> None:
        async for message in self.client.messages:
            body = orjson.loads(message.payload)  # type: ignore[arg-type]
            assert message.topic.value == f"sp/v1/_deadletter/{body['reason']}"
            if self.marker in body["topic"]:
                self.items.append(body)

    def reasons(self) -> dict[str, str]:
        """original topic -> reason."""
        return {d["topic"]: d["reason"] for d in self.items}
