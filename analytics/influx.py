"""InfluxDB v1 HTTP API access of analytics: today's counters for catch-up, KPI rows out."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
import numpy as np

from analytics.devices import COUNTER_FIELDS, FIELD_CODES, DeviceIndex

KPI_MEASUREMENT = "kpi"
TELEMETRY_MEASUREMENT = "telemetry"


class InfluxError(RuntimeError):
    """InfluxDB refused a query or a write; the message carries its answer."""


def _escape_tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def kpi_line(kpi: Mapping[str, float | None], tags: Mapping[str, str], ts_ms: int) -> str | None:
    """One line-protocol row of measurement `kpi` (null and non-finite fields omitted).

    Args:
        kpi: KPI dictionary.
        tags: tag set (scope, park, enterprise).
        ts_ms: row time (ms).

    Returns:
        The line, or None when no field has a value.
    """
    fields = ",".join(f"{k}={float(v)!r}" for k, v in kpi.items() if v is not None and math.isfinite(v))
    if not fields:
        return None
    tag_set = ",".join(f"{k}={_escape_tag(v)}" for k, v in sorted(tags.items()))
    return f"{KPI_MEASUREMENT},{tag_set} {fields} {ts_ms}"


def kpi_lines(park_id: str, park_kpis: Mapping[str, Any], ts_ms: int) -> list[str]:
    """Rows of one park's KPIs: one `scope=park` row and one `scope=enterprise` row per enterprise."""
    lines = [kpi_line(park_kpis["kpi"], {"scope": "park", "park": park_id}, ts_ms)]
    for eid, kpi in park_kpis["enterprises"].items():
        lines.append(kpi_line(kpi, {"scope": "enterprise", "park": park_id, "enterprise": eid}, ts_ms))
    return [line for line in lines if line is not None]


async def write_lines(client: httpx.AsyncClient, database: str, lines: Iterable[str]) -> None:
    """POST line protocol (precision ms) to `/write`.

    Raises:
        InfluxError: the server answered with an error.
        httpx.HTTPError: the server could not be reached.
    """
    body = "\n".join(lines)
    if not body:
        return
    r = await client.post("/write", params={"db": database, "precision": "ms"}, content=body.encode())
    if r.status_code != 204:
        raise InfluxError(f"InfluxDB write to {database!r} failed: HTTP {r.status_code}: {r.text.strip()}")


def today_counters_query(day_start_ms: int) -> str:
    """InfluxQL for each device's first and last counter readings since `day_start_ms`."""
    return (f'SELECT first(*), last(*) FROM "{TELEMETRY_MEASUREMENT}" '
            f"WHERE time >= {day_start_ms}ms GROUP BY \"device\"")


async def read_today_counters(
    client: httpx.AsyncClient, database: str, index: DeviceIndex, day_start_ms: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Today's first and last reading of every counter of the registry's devices.

    Args:
        client: HTTP client with the InfluxDB base URL.
        database: database name.
        index: device index (devices not in it are ignored).
        day_start_ms: 00:00 UTC+8 of today.

    Returns:
        `(device, field, first, last)` arrays, one entry per counter with readings today.

    Raises:
        InfluxError: the query failed.
    """
    r = await client.get("/query", params={"db": database, "q": today_counters_query(day_start_ms), "epoch": "ms"})
    if r.status_code != 200:
        raise InfluxError(f"InfluxDB query on {database!r} failed: HTTP {r.status_code}: {r.text.strip()}")
    return parse_today_counters(r.json(), index)


def parse_today_counters(
    answer: dict[str, Any], index: DeviceIndex
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Parse the JSON answer of `today_counters_query` (see `read_today_counters`)."""
    dev: list[int] = []
    fld: list[int] = []
    first: list[float] = []
    last: list[float] = []
    for result in answer.get("results", []):
        if "error" in result:
            raise InfluxError(f"InfluxDB query failed: {result['error']}")
        for series in result.get("series", []):
            d = index.position.get(series.get("tags", {}).get("device", ""))
            if d is None or not series.get("values"):
                continue
            row = dict(zip(series["columns"], series["values"][0], strict=False))
            for name in COUNTER_FIELDS:
                a, b = row.get(f"first_{name}"), row.get(f"last_{name}")
                if isinstance(a, int | float) and isinstance(b, int | float):
                    dev.append(d)
                    fld.append(FIELD_CODES[name])
                    first.append(float(a))
                    last.append(float(b))
    return (np.asarray(dev, dtype=np.int64), np.asarray(fld, dtype=np.int64), np.asarray(first, dtype=np.float64),
            np.asarray(last, dtype=np.float64))
