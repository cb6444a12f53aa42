"""Devices: registry data, latest values and downsampled history (raw or rollups) from InfluxDB."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import Field

from api.csvexport import CSV_RESPONSES, Format, csv_response, with_local_time
from api.deps import DeviceDep, InfluxDep
from api.history import InfluxSettingsDep, SegmentPublic, read_history
from api.models import DevicePublic, FieldValue, HistoryPublic, LatestPublic
from api.queries import history_sources, history_window, latest_queries, parse_fields, telemetry_target
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


class DeviceHistoryPublic(HistoryPublic):
    source: str = Field(description='"rollup_1h", "rollup_1m" or "raw": the coarsest source read; `segments` has the details')
    segments: list[SegmentPublic] = Field(description="each stretch of the range and its source")


@router.get("/{device_id}/history", response_model=DeviceHistoryPublic, responses=CSV_RESPONSES)
async def get_history(
    ref: DeviceDep,
    influx: InfluxDep,
    influx_settings: InfluxSettingsDep,
    start: Annotated[str | None, Query(max_length=40, description="ISO 8601 with offset, or epoch ms")] = None,
    end: Annotated[str | None, Query(max_length=40, description="ISO 8601 with offset, or epoch ms")] = None,
    fields: Annotated[str | None, Query(max_length=2000, description="comma-separated field names")] = None,
    every: Annotated[str | None, Query(max_length=12, description="bucket, e.g. 10s, 5m, 1h")] = None,
    format: Annotated[Format, Query(description="json, or csv for a download")] = Format.JSON,
) -> DeviceHistoryPublic | Response:
    """Each field per `every` bucket over [start, end): mean of instant values, last of counters, max of
    states. `every` defaults to ≤ ~2000 buckets; whole minutes and hours are read from the 1-minute and
    1-hour rollups where they hold data, the rest from raw data."""
    names = parse_fields(fields)
    window = history_window(start, end, every, now_ms=int(time.time() * 1000))
    history = await read_history(influx, telemetry_target(ref.device.id, names), window,
                                 history_sources(influx_settings, window.every_s))
    seen: list[str] = list(names or [])
    for point in history.points:
        for name in point:
            if name != "ts" and name not in seen:
                seen.append(name)
    if format is Format.CSV:
        return csv_response(["time", "ts", *seen], with_local_time(history.points), f"{ref.device.id}-history.csv")
    return DeviceHistoryPublic(device=ref.device.id, start=window.start_ms, end=window.end_ms,
                               every_s=window.every_s, fields=seen, points=history.points, source=history.source,
                               segments=history.segments_public())
