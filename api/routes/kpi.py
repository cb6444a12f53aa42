"""Park and enterprise KPIs: live from the MQTT cache, else the last row of measurement `kpi`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import EnterpriseDep, FeedDep, InfluxDep, ParkDep, RegistryDep
from api.errors import ApiError
from api.influx import Series
from api.models import KpiPublic
from api.queries import latest_kpi_query

router = APIRouter(tags=["kpi"])

_TAGS = ("scope", "park", "enterprise")


def _row_kpi(series: Series) -> tuple[int, dict[str, Any]] | None:
    rows = series.rows()
    if not rows:
        return None
    row = rows[0]
    ts = int(row.pop("time"))
    kpi = {k: v for k, v in row.items() if k not in _TAGS and v is not None}
    kpi.setdefault("new_energy_ratio_today", None)
    return ts, kpi


async def _stored(influx: InfluxDep, scope: str, ident: str) -> tuple[int, dict[str, Any]] | None:
    (series_list,) = await influx.query(latest_kpi_query(scope, ident)) or ([],)
    for series in series_list:
        found = _row_kpi(series)
        if found:
            return found
    return None


@router.get("/parks/{park_id}/kpi")
async def park_kpi(park: ParkDep, feed: FeedDep, influx: InfluxDep) -> KpiPublic:
    frame = feed.latest(park.id)
    if frame is not None:
        return KpiPublic(scope="park", park=park.id, ts=frame.data.get("ts"), source="live", kpi=frame.data["kpi"])
    stored = await _stored(influx, "park", park.id)
    if stored is None:
        return KpiPublic(scope="park", park=park.id, ts=None, source=None, kpi=None)
    return KpiPublic(scope="park", park=park.id, ts=stored[0], source="influxdb", kpi=stored[1])


@router.get("/enterprises/{enterprise_id}/kpi")
async def enterprise_kpi(found: EnterpriseDep, feed: FeedDep, influx: InfluxDep) -> KpiPublic:
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


@router.get("/kpi")
async def all_parks_kpi(registry: RegistryDep, feed: FeedDep, influx: InfluxDep) -> list[KpiPublic]:
    """Every park's KPIs; parks without a live message fall back to InfluxDB (skipped if it is down)."""
    out: dict[str, KpiPublic] = {}
    missing = []
    for park in registry.parks:
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
    return [out.get(p.id) or KpiPublic(scope="park", park=p.id, ts=None, source=None, kpi=None)
            for p in registry.parks]
