"""Prometheus metrics of one ingest service (own registry, so several services can share a process)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger("ingest.metrics")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class IngestMetrics:
    """Counters and histograms of an ingest service."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages = Counter("ingest_messages", "MQTT messages received, by topic kind", ["kind"], registry=r)
        self.points_written = Counter("ingest_points_written", "points accepted by InfluxDB", registry=r)
        self.batches_written = Counter("ingest_batches_written", "write requests accepted by InfluxDB", registry=r)
        self.rejected = Counter("ingest_rejected", "messages sent to the dead letter, by reason", ["reason"],
                                registry=r)
        self.write_retries = Counter("ingest_write_retries", "InfluxDB requests retried", registry=r)
        self.batch_latency = Histogram("ingest_batch_latency_seconds",
                                       "from a batch's first message received to InfluxDB accepting it",
                                       buckets=_LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("ingest_in_flight_messages", "messages received and not yet acknowledged",
                               registry=r)
        self.connections_lost = Counter("ingest_mqtt_connections_lost", "MQTT connections lost", registry=r)
        self.sessions = Counter("ingest_mqtt_sessions", "MQTT sessions started (connected and subscribed)",
                                registry=r)

    def stats(self) -> dict[str, Any]:
        """A plain snapshot: totals, rejects by reason, latency count and sum."""
        snapshot: dict[str, Any] = {"messages": 0.0, "messages_by_kind": {}, "rejected": {}}
        for metric in self.registry.collect():
            for sample in metric.samples:
                name, labels, value = sample.name, sample.labels, sample.value
                if name == "ingest_messages_total":
                    snapshot["messages"] += value
                    snapshot["messages_by_kind"][labels["kind"]] = value
                elif name == "ingest_rejected_total":
                    snapshot["rejected"][labels["reason"]] = value
                elif name in ("ingest_points_written_total", "ingest_batches_written_total",
                              "ingest_write_retries_total", "ingest_mqtt_connections_lost_total",
                              "ingest_mqtt_sessions_total"):
                    snapshot[name.removeprefix("ingest_").removesuffix("_total")] = value
                elif name == "ingest_in_flight_messages":
                    snapshot["in_flight"] = value
                elif name in ("ingest_batch_latency_seconds_count", "ingest_batch_latency_seconds_sum"):
                    snapshot[name.removeprefix("ingest_")] = value
        return snapshot

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


async def _handle(metrics: IngestMetrics, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        async with asyncio.timeout(5):
            request = await reader.readline()
            while (await reader.readline()).strip():
                pass  # headers are not needed
        parts = request.decode("latin-1").split()
        if len(parts) >= 2 and parts[0] == "GET" and parts[1].split("?")[0] in ("/metrics", "/"):
            body, status, ctype = metrics.exposition(), "200 OK", CONTENT_TYPE_LATEST
        else:
            body, status, ctype = b"not found: GET /metrics\n", "404 Not Found", "text/plain"
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                     "Connection: close\r\n\r\n".encode() + body)
        await writer.drain()
    except (TimeoutError, ConnectionError) as exc:
        log.debug("metrics request dropped: %s", exc)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def serve_metrics(metrics: IngestMetrics, host: str, port: int) -> AsyncIterator[asyncio.Server]:
    """Serve `GET /metrics` on `host:port` from the event loop (no thread), until the block exits.

    Args:
        metrics: what to expose.
        host: address to bind.
        port: TCP port (0 picks a free one; read it from the yielded server's sockets).
    """
    server = await asyncio.start_server(lambda r, w: _handle(metrics, r, w), host, port)
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()
