"""Operational endpoints: `/healthz` and `/metrics` (outside the versioned API)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import FeedDep, InfluxDep, MetricsDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz(feed: FeedDep, influx: InfluxDep) -> JSONResponse:
    """Broker and InfluxDB reachability, each reported; HTTP 503 when either is down."""
    influx_ok, influx_detail = await influx.ping()
    checks: dict[str, Any] = {
        "mqtt": {"ok": feed.connected, "detail": "connected" if feed.connected else feed.last_error},
        "influxdb": {"ok": influx_ok, "detail": influx_detail},
    }
    ok = all(c["ok"] for c in checks.values())
    return JSONResponse({"status": "ok" if ok else "degraded", "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics")
def metrics(api_metrics: MetricsDep) -> Response:
    """Prometheus text exposition."""
    return Response(generate_latest(api_metrics.registry), media_type=CONTENT_TYPE_LATEST)
