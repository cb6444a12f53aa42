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


#: Fields analytics reads back from `telemetry`: the counters and active power.
ENERGY_FIELDS: tuple[str, ...] = (*COUNTER_FIELDS, "active_power_kw")


def telemetry_query(start_ms: int, end_ms: int) -> str:
    """InfluxQL for the counters and power of every device in `(start_ms, end_ms]`."""
    fields = ", ".join(f'"{name}"' for name in ENERGY_FIELDS)
    return (f'SELECT {fields} FROM "{TELEMETRY_MEASUREMENT}" WHERE time > {start_ms}ms AND time <= {end_ms}ms '
            'GROUP BY "device"')


async def read_telemetry(
    client: httpx.AsyncClient, database: str, index: DeviceIndex, start_ms: int, end_ms: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Counter and power readings of the registry's devices in `(start_ms, end_ms]` as columns.

    Returns:
        `(device, ts, field, value)` as `StreamState.update` takes them.

    Raises:
        InfluxError: the query failed.
    """
    r = await client.get("/query", params={"db": database, "q": telemetry_query(start_ms, end_ms), "epoch": "ms"})
    if r.status_code != 200:
        raise InfluxError(f"InfluxDB query on {database!r} failed: HTTP {r.status_code}: {r.text.strip()}")
    return parse_telemetry(r.json(), index)


def parse_telemetry(answer: dict[str, Any], index: DeviceIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                          np.ndarray]:
    """Parse the JSON answer of `telemetry_query` into columns (unknown devices are ignored)."""
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for result in answer.get("results", []):
        if "error" in result:
            raise InfluxError(f"InfluxDB query failed: {result['error']}")
        for series in result.get("series", []):
            d = index.position.get(series.get("tags", {}).get("device", ""))
            if d is None or not series.get("values"):
                continue
            table = np.array(series["values"], dtype=np.float64)  # null → NaN
            ts = table[:, 0].astype(np.int64)
            for j, name in enumerate(series["columns"][1:], start=1):
                code = FIELD_CODES.get(name)
                if code is None:
                    continue
                have = ~np.isnan(table[:, j])
                n = int(have.sum())
                parts.append((np.full(n, d, dtype=np.int64), ts[have], np.full(n, code, dtype=np.int64),
                              table[have, j]))
    if not parts:
        empty_i = np.zeros(0, dtype=np.int64)
        return empty_i, empty_i.copy(), empty_i.copy(), np.zeros(0)
    dev, ts, fld, val = (np.concatenate([p[k] for p in parts]) for k in range(4))
    return dev, ts, fld, val


def field_set(fields: Mapping[str, float | None]) -> str:
    """Line-protocol field set of the finite values (empty if none)."""
    return ",".join(f"{k}={float(v)!r}" for k, v in fields.items() if v is not None and math.isfinite(v))


def line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, float | None], ts_ms: int) -> str | None:
    """One line-protocol row (None when no field has a value); tags with empty values are left out."""
    values = field_set(fields)
    if not values:
        return None
    tag_set = ",".join(f"{k}={_escape_tag(v)}" for k, v in sorted(tags.items()) if v)
    return f"{measurement},{tag_set} {values} {ts_ms}"


async def write_gzip(client: httpx.AsyncClient, database: str, lines: list[str]) -> None:
    """POST line protocol gzip-compressed (precision ms): bulk writes of history and backfill.

    Raises:
        InfluxError: the server answered with an error.
        httpx.HTTPError: the server could not be reached.
    """
    import gzip

    if not lines:
        return
    body = gzip.compress("\n".join(lines).encode(), compresslevel=1)
    r = await client.post("/write", params={"db": database, "precision": "ms"}, content=body,
                          headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})
    if r.status_code != 204:
        raise InfluxError(f"InfluxDB write to {database!r} failed: HTTP {r.status_code}: {r.text.strip()}")


async def read_anchors(client: httpx.AsyncClient, database: str, index: DeviceIndex, before_ms: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each series' last counter and power reading before `before_ms`, however old (a replay's anchors).

    One `last()` per field (with several selectors InfluxDB would not return the readings' own times).

    Raises:
        InfluxError: the query failed.
    """
    q = ";".join(f'SELECT last("{name}") AS "{name}" FROM "{TELEMETRY_MEASUREMENT}" WHERE time < {before_ms}ms '
                 'GROUP BY "device"' for name in ENERGY_FIELDS)
    r = await client.get("/query", params={"db": database, "q": q, "epoch": "ms"})
    if r.status_code != 200:
        raise InfluxError(f"InfluxDB query on {database!r} failed: HTTP {r.status_code}: {r.text.strip()}")
    return parse_telemetry(r.json(), index)
