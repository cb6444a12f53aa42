"""Park and enterprise KPIs: live from the MQTT cache, else the last row of measurement `kpi`; their history
over a range; and a park's enterprises side by side (ranking)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import Field

from api.csvexport import CSV_RESPONSES, Format, csv_response, with_local_time
from api.deps import CallerDep, EnterpriseKpiDep, FeedDep, InfluxDep, ParkKpiDep
from api.errors import ApiError
from api.history import InfluxSettingsDep, SegmentPublic, read_history
from api.influx import InfluxReader, Series
from api.models import EnterpriseKpiRow, KpiHistoryPublic, KpiPublic
from api.queries import (
    KPI_KEYS,
    history_sources,
    history_window,
    kpi_target,
    latest_enterprise_kpis_query,
    latest_kpi_query,
    parse_kpi_fields,
)
from smartpark.config import InfluxSettings

router = APIRouter(tags=["kpi"])

_TAGS = ("scope", "park", "enterprise")
StartQ = Annotated[str | None, Query(max_length=40, description="ISO 8601 with offset, or epoch ms")]
EndQ = Annotated[str | None, Query(max_length=40, description="ISO 8601 with offset, or epoch ms; default now")]
EveryQ = Annotated[str | None, Query(max_length=12, description="bucket, e.g. 1m, 15m, 1h")]
FieldsQ = Annotated[str | None, Query(max_length=2000, description="comma-separated KPI keys; default all")]
FormatQ = Annotated[Format, Query(description="json, or csv for a download")]


def _row_kpi(series: Series) -> tuple[int, dict[str, Any]] | None:
    rows = series.rows()
    if not rows:
        return None
    row = rows[0]
    ts = int(row.pop("time"))
    kpi = {k: v for k, v in row.items() if k not in _TAGS and v is not None}
    kpi.setdefault("new_energy_ratio_today", None)
    return ts, kpi


async def _stored(influx: InfluxReader, scope: str, ident: str) -> tuple[int, dict[str, Any]] | None:
    (series_list,) = await influx.query(latest_kpi_query(scope, ident)) or ([],)
    for series in series_list:
        found = _row_kpi(series)
        if found:
            return found
    return None


def _kpi_csv(items: list[KpiPublic], filename: str) -> Response:
    keys = [k for k in KPI_KEYS if any(i.kpi and k in i.kpi for i in items)]
    rows = [{"scope": i.scope, "park": i.park, "enterprise": i.enterprise, "ts": i.ts, "source": i.source,
             **(i.kpi or {})} for i in items]
    return csv_response(["time", "scope", "park", "enterprise", "ts", "source", *keys], with_local_time(rows), filename)


@router.get("/parks/{park_id}/kpi")
async def park_kpi(park: ParkKpiDep, feed: FeedDep, influx: InfluxDep) -> KpiPublic:
    frame = feed.latest(park.id)
    if frame is not None:
        return KpiPublic(scope="park", park=park.id, ts=frame.data.get("ts"), source="live", kpi=frame.data["kpi"])
    stored = await _stored(influx, "park", park.id)
    if stored is None:
        return KpiPublic(scope="park", park=park.id, ts=None, source=None, kpi=None)
    return KpiPublic(scope="park", park=park.id, ts=stored[0], source="influxdb", kpi=stored[1])


@router.get("/enterprises/{enterprise_id}/kpi")
async def enterprise_kpi(found: EnterpriseKpiDep, feed: FeedDep, influx: InfluxDep) -> KpiPublic:
    park, ent = found
    frame = feed.latest(park.id)
    enterprises = frame.data.get("enterprises") if frame is not None else None
    if frame is not None and isinstance(enterprises, dict) and isinstance(enterprises.get(ent.id), dict):
        return KpiPublic(scope="enterprise", park=park.id, enterprise=ent.id, ts=frame.data.get("ts"),
                         source="live", kpi=enterprises[ent.id])
    stored = await _stored(influx, "enterprise", ent.id)
    if stored is None:
        return KpiPublic(scope="enterprise", park=park.id, enterprise=ent.id, ts=None, source=None, kpi=None)
    return KpiPublic(scope="enterprise", park=park.id, enterprise=ent.id, ts=stored[0], source="influxdb",
                     kpi=stored[1])


@router.get("/kpi", response_model=list[KpiPublic], responses=CSV_RESPONSES)
async def all_parks_kpi(access: CallerDep, feed: FeedDep, influx: InfluxDep,
                        format: FormatQ = Format.JSON) -> list[KpiPublic] | Response:
    """Every park's KPIs; parks without a live message fall back to InfluxDB (skipped if it is down)."""
    access.require_kpi_overview()
    parks = access.parks()
    out: dict[str, KpiPublic] = {}
    missing = []
    for park in parks:
        frame = feed.latest(park.id)
        if frame is not None:
            out[park.id] = KpiPublic(scope="park", park=park.id, ts=frame.data.get("ts"), source="live",
                                     kpi=frame.data["kpi"])
        else:
            missing.append(park.id)
    if missing:
        try:
            (series_list,) = await influx.query(latest_kpi_query("park")) or ([],)
        except ApiError:
            series_list = []  # the live values still answer; the rest shows as "no data"
        for series in series_list:
            park_id = series.tags.get("park", "")
            found = _row_kpi(series)
            if park_id in missing and found:
                out[park_id] = KpiPublic(scope="park", park=park_id, ts=found[0], source="influxdb", kpi=found[1])
    items = [out.get(p.id) or KpiPublic(scope="park", park=p.id, ts=None, source=None, kpi=None) for p in parks]
    if format is Format.CSV:
        return _kpi_csv(items, "parks-kpi.csv")
    return items


@router.get("/parks/{park_id}/enterprises/kpi", response_model=list[EnterpriseKpiRow], responses=CSV_RESPONSES)
async def park_enterprises_kpi(park: ParkKpiDep, feed: FeedDep, influx: InfluxDep,
                               format: FormatQ = Format.JSON) -> list[EnterpriseKpiRow] | Response:
    """Every enterprise of a park with its latest KPIs and its consumption today per mu of land, for ranking."""
    latest: dict[str, tuple[int | None, dict[str, Any]]] = {}
    frame = feed.latest(park.id)
    live = frame.data.get("enterprises") if frame is not None else None
    if frame is not None and isinstance(live, dict):
        latest = {k: (frame.data.get("ts"), v) for k, v in live.items() if isinstance(v, dict)}
    else:
        (series_list,) = await influx.query(latest_enterprise_kpis_query(park.id)) or ([],)
        for series in series_list:
            found = _row_kpi(series)
            if found:
                latest[series.tags.get("enterprise", "")] = found
    rows = []
    for ent in park.enterprises:
        ts, kpi = latest.get(ent.id, (None, None))
        consumed = kpi.get("consumed_today_kwh") if kpi else None
        rows.append(EnterpriseKpiRow(
            enterprise=ent.id, name=ent.name, name_en=ent.name_en, land_area_mu=ent.land_area_mu,
            contracted_capacity_kw=ent.contracted_capacity_kw, ts=ts, kpi=kpi,
            consumed_today_kwh_per_mu=None if consumed is None else consumed / ent.land_area_mu,
        ))
    if format is Format.CSV:
        keys = [k for k in KPI_KEYS if any(r.kpi and k in r.kpi for r in rows)]
        flat = [{**r.model_dump(exclude={"kpi"}), **(r.kpi or {})} for r in rows]
        columns = ["enterprise", "name", "name_en", "land_area_mu", "contracted_capacity_kw", "ts",
                   "consumed_today_kwh_per_mu", *keys]
        return csv_response(["time", *columns], with_local_time(flat), f"{park.id}-enterprises-kpi.csv")
    return rows


class KpiHistoryRollupPublic(KpiHistoryPublic):
    source: str = Field(description='"rollup_1h", "rollup_1m" or "raw": the coarsest source read; `segments` has the details')
    segments: list[SegmentPublic] = Field(description="each stretch of the range and its source")


async def _history(influx: InfluxReader, influx_settings: InfluxSettings, scope: str, park: str,
                   enterprise: str | None, start: str | None, end: str | None, every: str | None,
                   fields: str | None) -> KpiHistoryRollupPublic:
    keys = parse_kpi_fields(fields)
    window = history_window(start, end, every, now_ms=int(time.time() * 1000))
    ident = enterprise if scope == "enterprise" and enterprise else park
    history = await read_history(influx, kpi_target(scope, ident, keys), window,
                                 history_sources(influx_settings, window.every_s))
    seen = {key for point in history.points for key in point}
    return KpiHistoryRollupPublic(scope=scope, park=park, enterprise=enterprise, start=window.start_ms,
                                  end=window.end_ms, every_s=window.every_s, fields=[k for k in keys if k in seen],
                                  points=history.points, source=history.source, segments=history.segments_public())


def _history_csv(history: KpiHistoryPublic, filename: str) -> Response:
    return csv_response(["time", "ts", *history.fields], with_local_time(history.points), filename)


@router.get("/parks/{park_id}/kpi/history", response_model=KpiHistoryRollupPublic, responses=CSV_RESPONSES)
async def park_kpi_history(park: ParkKpiDep, influx: InfluxDep, influx_settings: InfluxSettingsDep,
                           start: StartQ = None, end: EndQ = None, every: EveryQ = None, fields: FieldsQ = None,
                           format: FormatQ = Format.JSON) -> KpiHistoryRollupPublic | Response:
    """A park's KPIs over [start, end) per `every` bucket (default range: the last hour), read from the
    1-minute or 1-hour rollups where the bucket allows and they hold data, else from raw rows."""
    history = await _history(influx, influx_settings, "park", park.id, None, start, end, every, fields)
    return _history_csv(history, f"{park.id}-kpi.csv") if format is Format.CSV else history


@router.get("/enterprises/{enterprise_id}/kpi/history", response_model=KpiHistoryRollupPublic,
            responses=CSV_RESPONSES)
async def enterprise_kpi_history(found: EnterpriseKpiDep, influx: InfluxDep, influx_settings: InfluxSettingsDep,
                                 start: StartQ = None, end: EndQ = None, every: EveryQ = None,
                                 fields: FieldsQ = None,
                                 format: FormatQ = Format.JSON) -> KpiHistoryRollupPublic | Response:
    """An enterprise's KPIs over [start, end) per `every` bucket (default range: the last hour), from the
    rollups or raw rows like the park's."""
    park, ent = found
    history = await _history(influx, influx_settings, "enterprise", park.id, ent.id, start, end, every, fields)
    return _history_csv(history, f"{ent.id}-kpi.csv") if format is Format.CSV else history
