"""A catch-up that cannot reach InfluxDB does not let the checkpoint skip the gap: the next start reads it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from analytics.checkpoint import read_checkpoint
from analytics.service import AnalyticsService
from deploy.services import RunningService, free_port
from parkmodel.codec import telemetry_payload
from parkmodel.topics import telemetry_topic
from tests.analytics.test_service import make_settings, now_ms
from tests.conftest import make_registry

pytestmark = pytest.mark.integration
MIN = 60_000


async def test_gap_unread_while_influx_is_down_is_read_after_it_is_back(
    broker: RunningService, influx_url: str, influx_db: str, uid: str, tmp_path: Path
) -> None:
    registry = make_registry(uid)
    park, ent, meter = f"p{uid}", f"e{uid}-0", f"m{uid}"
    settings = make_settings(broker, influx_url, influx_db, uid, tmp_path)
    t = now_ms()
    # Run 1: 7 kWh, folded as of t − 6 min; its checkpoint says so.
    async with AnalyticsService(settings, registry) as svc:
        svc.receive(telemetry_topic(park, ent, meter), telemetry_payload(1, [
            (t - 8 * MIN, {"energy_import_kwh": 100.0}), (t - 7 * MIN, {"energy_import_kwh": 107.0})]))
        assert svc.fold(at_ms=t - 6 * MIN) == 2
    checkpoint = svc.checkpoint
    # While it was down, ingest stored +5 kWh (older than the catch-up's one-minute overlap at the next start).
    lines = [f"telemetry,device={meter},enterprise={ent},park={park},role=grid_meter energy_import_kwh={v} {ts}"
             for v, ts in ((109.0, t - 4 * MIN), (112.0, t - 3 * MIN))]
    async with httpx.AsyncClient(base_url=influx_url) as http:
        (await http.post("/write", params={"db": influx_db, "precision": "ms"}, content="\n".join(lines))
         ).raise_for_status()

    # Run 2: InfluxDB unreachable (nothing listens on that port): the catch-up fails.
    down = make_settings(broker, f"http://127.0.0.1:{free_port()}", influx_db, uid, tmp_path)
    async with AnalyticsService(down, registry) as svc:
        assert svc.compute()[park]["kpi"]["grid_import_today_kwh"] == pytest.approx(7.0)
        # Live data keeps arriving: it must not move the checkpoint past the gap either.
        svc.receive(telemetry_topic(park, ent, meter), telemetry_payload(2, [(now_ms(), {"energy_import_kwh": 113.0})]))
        assert svc.fold() == 1
    probe = AnalyticsService(settings, registry, watch_registry=False)
    saved_at = read_checkpoint(checkpoint, probe.state)
    assert saved_at is not None and saved_at <= t - 6 * MIN

    # Run 3: InfluxDB is back: the gap is read (and the live reading after it counted once): 100 -> 113.
    async with AnalyticsService(settings, registry) as svc:
        assert svc.compute()[park]["kpi"]["grid_import_today_kwh"] == pytest.approx(13.0)
