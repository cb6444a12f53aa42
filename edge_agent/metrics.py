"""Prometheus metrics of the edge agent (exposed by whoever serves the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

POLLS = Counter("smartpark_edge_polls_total", "Device poll cycles by result", ["device", "result"])
FLAGGED = Counter(
    "smartpark_edge_values_flagged_total",
    "Decoded values outside the point's declared range (not published)",
    ["device", "point"],
)
STORE_DEPTH = Gauge("smartpark_edge_store_depth", "Readings waiting in the store-and-forward queue", ["gateway"])
STORE_DROPPED = Counter(
    "smartpark_edge_store_dropped_total", "Telemetry readings dropped because the queue was full", ["gateway"]
)
PUBLISHED = Counter("smartpark_edge_published_total", "Messages acknowledged by the broker", ["gateway", "kind"])
