"""SmartPark ingest: MQTT shared subscription -> validate -> line protocol -> InfluxDB (v1 HTTP API)."""

from ingest.acks import AckSequencer
from ingest.batch import Accepted, Batcher
from ingest.deadletter import dead_letter_payload, dead_letter_topic
from ingest.influx import InfluxWriter, WriteRejected
from ingest.metrics import IngestMetrics, serve_metrics
from ingest.service import IngestService, run_ingest, subscriptions
from ingest.translate import Translator

__all__ = [
    "Accepted", "AckSequencer", "Batcher", "InfluxWriter", "IngestMetrics", "IngestService", "Translator",
    "WriteRejected", "dead_letter_payload", "dead_letter_topic", "run_ingest", "serve_metrics", "subscriptions",
]
