"""A thin reader over InfluxDB's v1 `/query` HTTP API (InfluxDB 1.x natively, 2.x/3.x compatibility)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from analytics.influx import InfluxError
from api.errors import ApiError, ErrorCode
from smartpark.config import InfluxSettings

#: Read timeout floor (s): report and energy replays read for longer than a KPI query.
LONG_READ_S = 30.0


def open_client(settings: InfluxSettings) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` to InfluxDB (the app's one client, opened in the lifespan; the energy replay's
    worker thread, which runs its own event loop, opens its own the same way).

    Args:
        settings: URL, credentials and timeout (reads may take up to `max(timeout_s, LONG_READ_S)`).
    """
    auth = None
    if settings.username and settings.password:
        auth = httpx.BasicAuth(settings.username, settings.password.get_secret_value())
    timeout = httpx.Timeout(settings.timeout_s, read=max(settings.timeout_s, LONG_READ_S))
    return httpx.AsyncClient(base_url=settings.url, timeout=timeout, auth=auth)


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a statement's result."""

    name: str
    columns: list[str]
    values: list[list[Any]]
    tags: dict[str, str] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=False)) for row in self.values]


class InfluxReader:
    """Runs InfluxQL read queries; turns transport and server failures into `ApiError`s.

    Args:
        client: an open `httpx.AsyncClient` whose base URL is the InfluxDB server.
        settings: database name and credentials.
    """

    def __init__(self, client: httpx.AsyncClient, settings: InfluxSettings) -> None:
        self._client = client
        self._settings = settings

    @property
    def client(self) -> httpx.AsyncClient:
        """The app's one open client (for the analytics and reports readers that take an `httpx.AsyncClient`)."""
        return self._client

    @property
    def database(self) -> str:
        return self._settings.database

    @property
    def settings(self) -> InfluxSettings:
        return self._settings

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Map failures of code reading through `client` to `ApiError`s, like `query` does.

        Raises:
            ApiError: `unavailable` when InfluxDB cannot be reached, `upstream_error` when it refuses a query.
        """
        try:
            yield
        except httpx.TransportError as exc:
            raise ApiError(ErrorCode.UNAVAILABLE,
                           f"InfluxDB at {self._settings.url} is unreachable: {type(exc).__name__}") from None
        except InfluxError as exc:
            raise ApiError(ErrorCode.UPSTREAM_ERROR, str(exc)) from None

    def _params(self, query: str) -> dict[str, str]:
        params = {"db": self._settings.database, "q": query, "epoch": "ms"}
        if self._settings.username:
            params["u"] = self._settings.username
        if self._settings.password:
            params["p"] = self._settings.password.get_secret_value()
        return params

    async def query(self, query: str) -> list[list[Series]]:
        """Run one or more `;`-separated statements; one list of series per statement.

        Raises:
            ApiError: `unavailable` when InfluxDB cannot be reached, `upstream_error` when it refuses the query.
        """
        try:
            # POST keeps long queries out of URLs and access logs.
            response = await self._client.post("/query", data=self._params(query))
        except httpx.TransportError as exc:
            raise ApiError(ErrorCode.UNAVAILABLE,
                           f"InfluxDB at {self._settings.url} is unreachable: {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise ApiError(ErrorCode.UNAVAILABLE, f"InfluxDB answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise ApiError(ErrorCode.UPSTREAM_ERROR, f"InfluxDB answered HTTP {response.status_code} without JSON") from None
        if "error" in body:
            raise ApiError(ErrorCode.UPSTREAM_ERROR, f"InfluxDB refused the query: {body['error']}")
        results: list[list[Series]] = []
        for result in body.get("results", []):
            if "error" in result:
                if "database not found" in str(result["error"]):
                    results.append([])  # nothing written yet is "no data", not a failure
                    continue
                raise ApiError(ErrorCode.UPSTREAM_ERROR, f"InfluxDB refused the query: {result['error']}")
            results.append([
                Series(s.get("name", ""), s.get("columns", []), s.get("values", []), s.get("tags") or {})
                for s in result.get("series", [])
            ])
        return results

    async def ping(self) -> tuple[bool, str]:
        """Whether InfluxDB answers `/ping`, and a short detail."""
        try:
            response = await self._client.get("/ping", timeout=2.0)
        except httpx.TransportError as exc:
            return False, f"unreachable: {type(exc).__name__}"
        if response.status_code != 204:
            return False, f"/ping answered HTTP {response.status_code}"
        return True, response.headers.get("X-Influxdb-Version", "ok")
