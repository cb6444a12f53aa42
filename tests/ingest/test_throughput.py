"""Messages/s and points/s through ingest (printed, not asserted: it depends on the machine).

The broker first queues a backlog for the worker's persistent session while the worker is away; then
the worker is started and timed until every point is in InfluxDB and every message acknowledged, so
the figure is ingest's own (validate, batch, write, ack), not the publisher's.
"""

from __future__ import annotations

import asyncio
import time

from deploy.services import RunningService
from ingest import IngestService
from parkmodel.codec import telemetry_payload
from parkmodel.registry import Registry
from tests.ingest.helpers import TEST_SESSION_EXPIRY_S, count_points, eventually, make_settings, mqtt_client, now_ms

MESSAGES = 6000
POINTS_PER_MESSAGE = 10


async def test_throughput_of_a_backlog(broker: RunningService, influx_url: str, influx_db: str, uid: str,
                                       small_registry: Registry) -> None:
    settings = make_settings(broker, influx_url, influx_db, uid, batch_points=5000, batch_interval_s=0.2)
    async with IngestService(settings, small_registry, session_expiry_s=TEST_SESSION_EXPIRY_S) as svc:
        await svc.wait_subscribed()  # creates the persistent session and its subscriptions
    t0 = now_ms() - 3600_000
    fields = {"active_power_kw": 1.5, "reactive_power_kvar": 0.5, "voltage_v": 230.1, "current_a": 10.2,
              "power_factor": 0.98, "frequency_hz": 50.0, "energy_import_kwh": 12345.6}
    devices = [f"m{uid}", f"pv{uid}"]
    async with mqtt_client(broker) as pub:
        for i in range(0, MESSAGES, 500):
            await asyncio.gather(*(
                pub.publish(f"sp/v1/p{uid}/e{uid}-0/{devices[k % 2]}/telemetry",
                            telemetry_payload(k, [(t0 + k * POINTS_PER_MESSAGE + j, fields)
                                                  for j in range(POINTS_PER_MESSAGE)]), qos=1)
                for k in range(i, min(MESSAGES, i + 500))))
    total = MESSAGES * POINTS_PER_MESSAGE
    started = time.perf_counter()
    async with IngestService(settings, small_registry, session_expiry_s=TEST_SESSION_EXPIRY_S) as svc:

        async def drained() -> bool:
            s = svc.stats()
            return bool(s["points_written"] >= total and s["in_flight"] == 0)
        await eventually(drained, within=120, what="backlog drained")
        elapsed = time.perf_counter() - started
        stats = svc.stats()
    assert stats["messages"] == MESSAGES and stats["rejected"] == {}
    assert await count_points(influx_url, influx_db) == total
    print(f"\ningest throughput: {MESSAGES} messages / {total} points in {elapsed:.2f} s = "
          f"{MESSAGES / elapsed:,.0f} messages/s, {total / elapsed:,.0f} points/s "
          f"({stats['batches_written']:.0f} batches, mean batch latency "
          f"{stats['batch_latency_seconds_sum'] / max(1, stats['batch_latency_seconds_count']):.3f} s)")
