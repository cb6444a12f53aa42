"""Write line protocol to InfluxDB through its v1 HTTP API, retrying what is worth retrying.

Connection errors, timeouts, 5xx and auth errors are transient for a pipeline (the data is fine, the
database is not): `write` retries them with jittered exponential backoff until it succeeds or is
cancelled. A 400 (unparsable line, field type conflict) or 413 is about the data: `write` raises
`WriteRejected` so the caller can split the batch and find the bad lines.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import random
from collections.abc import Callable
from types import TracebackType
from typing import Self

import httpx

from smartpark.config import InfluxSettings
from smartpark.influx_schema import SchemaError, ensure_schema

log = logging.getLogger("ingest.influx")

GZIP_MIN_BYTES = 64 * 1024
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
BACKOFF_BASE_S = 0.1
BACKOFF_MAX_S = 5.0


class WriteRejected(Exception):
    """InfluxDB refused the data itself (HTTP 400 or 413).

    Args:
        status: the HTTP status.
        error: InfluxDB's error text.
    """

    def __init__(self, status: int, error: str) -> None:
        super().__init__(f"InfluxDB rejected the write (HTTP {status}): {error}")
        self.status = status
        self.error = error


def backoff_delay(attempt: int, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_MAX_S) -> float:
    """Full-jitter exponential backoff: uniform in [0.5, 1] x min(cap, base x 2^attempt).

    Args:
        attempt: 0 for the first retry.
        base: the first delay.
        cap: the longest delay.
    """
    return min(cap, base * 2 ** min(attempt, 30)) * random.uniform(0.5, 1.0)


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:2000]
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return response.text.strip()[:2000]


class InfluxWriter:
    """An async context manager owning one `httpx.AsyncClient` to InfluxDB.

    Args:
        settings: URL, database, credentials, timeout.
        on_retry: called once per retried attempt (metrics).
    """

    def __init__(self, settings: InfluxSettings, *, on_retry: Callable[[], None] = lambda: None) -> None:
        self._settings = settings
        # Over loopback gzip only moves CPU from the wire to both ends (~8 % of ingest's profile): send plain.
        self._gzip = httpx.URL(settings.url).host not in LOOPBACK_HOSTS
        self._on_retry = on_retry
        self._database_ready = False
        auth = None
        if settings.username is not None:
            password = settings.password.get_secret_value() if settings.password else ""
            auth = httpx.BasicAuth(settings.username, password)
        self._http = httpx.AsyncClient(base_url=settings.url.rstrip("/"), auth=auth,
                                       timeout=httpx.Timeout(settings.timeout_s))

    async def __aenter__(self) -> Self:
        await self._http.__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._http.__aexit__(exc_type, exc, tb)

    async def ensure_database(self) -> None:
        """`CREATE DATABASE` (idempotent in InfluxDB 1.x), retried until it answers.

        InfluxDB 2/3 compatibility APIs map databases to buckets and refuse `CREATE DATABASE`; that is
        logged and ignored, the bucket must exist.
        """
        attempt = 0
        query = f'CREATE DATABASE "{self._settings.database}"'
        while True:
            try:
                response = await self._http.post("/query", data={"q": query})
            except httpx.TransportError as exc:
                log.warning("influxdb unreachable at %s (%s); retrying", self._settings.url, exc)
            else:
                if response.status_code < 300:
                    await self._ensure_schema()
                    self._database_ready = True
                    return
                if response.status_code < 500 and response.status_code not in (401, 403):
                    log.warning("CREATE DATABASE refused (HTTP %s: %s); assuming it exists",
                                response.status_code, _error_text(response))
                    self._database_ready = True
                    return
                log.warning("CREATE DATABASE failed (HTTP %s: %s); retrying",
                            response.status_code, _error_text(response))
            self._on_retry()
            await asyncio.sleep(backoff_delay(attempt))
            attempt += 1

    async def _ensure_schema(self) -> None:
        # Retention policies and rollup CQs (raw for 30 days, 1-minute and 1-hour rollups for years); on
        # InfluxDB 2/3, which have buckets instead, this is refused: logged, writes go on.
        try:
            await ensure_schema(self._http, self._settings)
        except SchemaError as exc:
            log.warning("retention policies / continuous queries not set up: %s", exc)

    async def write(self, lines: list[str]) -> None:
        """Write lines; return once InfluxDB accepted them all.

        Args:
            lines: line protocol, timestamps in ms.

        Raises:
            WriteRejected: InfluxDB refused (some of) the data (HTTP 400/413).
        """
        await self.write_body("\n".join(lines).encode())

    async def write_body(self, body: bytes) -> None:
        """Write line protocol already joined by `\\n` (see `write`).

        Args:
            body: line protocol, timestamps in ms.

        Raises:
            WriteRejected: InfluxDB refused (some of) the data (HTTP 400/413).
        """
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._gzip and len(body) >= GZIP_MIN_BYTES:
            body = gzip.compress(body, compresslevel=1)  # level 1: ~5x smaller for ~2 ms of CPU per MB
            headers["Content-Encoding"] = "gzip"
        params = {"db": self._settings.database, "precision": "ms"}
        attempt = 0
        while True:
            if not self._database_ready:
                await self.ensure_database()
            try:
                response = await self._http.post("/write", params=params, content=body, headers=headers)
            except httpx.TransportError as exc:
                log.warning("influxdb write failed (%s: %s); retrying", type(exc).__name__, exc)
            else:
                status = response.status_code
                if status < 300:
                    return
                error = _error_text(response)
                if status in (400, 413):
                    raise WriteRejected(status, error)
                if status == 404 and "database not found" in error:
                    self._database_ready = False
                log.warning("influxdb write answered HTTP %s (%s); retrying", status, error)
            self._on_retry()
            await asyncio.sleep(backoff_delay(attempt))
            attempt += 1
