"""A thin reader over InfluxDB's v1 `/query` HTTP API (InfluxDB 1.x natively, 2.x/3.x compatibility)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from api.errors import ApiError, ErrorCode
from smartpark.config import InfluxSettings


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
