"""Devices: registry data, latest values and downsampled history from InfluxDB."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.csvexport import CSV_RESPONSES, Format, csv_response, with_local_time
from api.deps import DeviceDep, InfluxDep
from api.models import DevicePublic, FieldValue, HistoryPublic, LatestPublic
from api.queries import history_query, history_window, latest_queries, parse_fields
from parkmodel.points import POINTS

router = APIRouter(prefix="/devices", tags=["devices"])


@router.get("/{device_id}")
def get_device(ref: DeviceDep) -> DevicePublic:
    return DevicePublic.of(ref)


@router.get("/{device_id}/latest")
async def get_latest(ref: DeviceDep, influx: InfluxDep) -> LatestPublic:
    """The last value of each field of the device in measurement `telemetry`, each with its own timestamp."""
    fields = list(POINTS)
    results = await influx.query(latest_queries(ref.device.id, fields))
    values: dict[str, FieldValue] = {}
    for name, series_list in zip(fields, results, strict=False):
        for series in series_list:
            for row in series.rows():
                values[name] = FieldValue(value=row.get("value"), ts=int(row["time"]))
    newest = max((v.ts for v in values.values()), default=None)
    return LatestPublic(device=ref.device.id, park=ref.park.id, enterprise=ref.enterprise.id, ts=newest,
                        fields=values)


@router.get("/{device_id}/history", response_model=HistoryPublic, responses=CSV_RESPONSES)
async def get_history(
    ref: DeviceDep,
    influx: InfluxDep,
    start: Annotated[str | None, Query(max_length=40, description="ISO 8601 with offset, or epoch ms")] = None,
    end: Annotated[str | None, Query(max_length=40, description="ISO 8601 with offset, or epoch ms")] = None,
    fields: Annotated[str | None, Query(max_length=2000, description="comma-separated field names")] = None,
    every: Annotated[str | None, Query(max_length=12, description="bucket, e.g. 10s, 5m, 1h")] = None,
    format: Annotated[Format, Query(description="json, or csv for a download")] = Format.JSON,
) -> HistoryPublic | Response:
    """Mean of each field per `every` bucket over [start, end); `every` defaults to ≤ ~2000 buckets."""
    names = parse_fields(fields)
    window = history_window(start, end, every, now_ms=int(time.time() * 1000))
    (series_list,) = await influx.query(history_query(ref.device.id, names, window)) or ([],)
    points: list[dict[str, Any]] = []
    seen: list[str] = list(names or [])
    for series in series_list:
        for row in series.rows():
            point: dict[str, Any] = {"ts": int(row.pop("time"))}
            for column, value in row.items():
                if value is None:  # `mean(*)` has a column for every field of the measurement
                    continue
                name = column.removeprefix("mean_") if names is None else column
                point[name] = value
                if name not in seen:
                    seen.append(name)
            points.append(point)
    if format is Format.CSV:
        return csv_response(["time", "ts", *seen], with_local_time(points), f"{ref.device.id}-history.csv")
    return HistoryPublic(device=ref.device.id, start=window.start_ms, end=window.end_ms, every_s=window.every_s,
                         fields=seen, points=points)
