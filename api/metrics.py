"""Prometheus metrics of one app instance (own registry, so several apps can live in one process)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ApiMetrics:
    """The counters `/metrics` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("smartpark_api_requests", "HTTP requests by route template and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("smartpark_api_request_seconds", "HTTP request latency by route template",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.websocket_clients = Gauge("smartpark_api_websocket_clients", "Open live WebSocket connections",
                                       registry=self.registry)
        self.kpi_messages = Counter("smartpark_api_kpi_messages", "KPI messages received over MQTT by outcome",
                                    ["result"], registry=self.registry)
        self.mqtt_connected = Gauge("smartpark_api_mqtt_connected", "1 while the KPI feed is connected",
                                    registry=self.registry)
        self.mqtt_reconnects = Counter("smartpark_api_mqtt_connect_failures", "Failed or lost MQTT connections",
                                       registry=self.registry)


def route_template(scope: Scope) -> str:
    """`/api/v1/devices/{device_id}` for `/api/v1/devices/m1`: path parameters put back as names, so the
    label set stays bounded whatever clients send."""
    path: str = scope.get("path", "")
    if path.startswith("/static/"):
        return "/static/{path}"
    if scope.get("route") is None:
        return "unmatched"
    names_by_value = {str(v): k for k, v in (scope.get("path_params") or {}).items()}
    return "/".join(f"{{{names_by_value[seg]}}}" if seg in names_by_value else seg for seg in path.split("/"))


class MetricsMiddleware:
    """Counts HTTP requests by route template (`/api/v1/devices/{device_id}`), never by raw path.

    Args:
        app: the wrapped ASGI app.
        metrics: where to count.
    """

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            template = route_template(scope)
            method = scope.get("method", "")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
