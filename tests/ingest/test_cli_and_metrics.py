"""The `smartpark ingest` command (config errors, a real run stopped by SIGTERM) and the metrics endpoint."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import httpx
import yaml
from typer.testing import CliRunner

from deploy.services import RunningService, free_port
from ingest import IngestService
from ingest.cli import app
from parkmodel.codec import telemetry_payload
from parkmodel.registry import Registry
from tests.conftest import make_registry
from tests.ingest.helpers import (
    TEST_SESSION_EXPIRY_S,
    count_points,
    eventually,
    make_settings,
    mqtt_client,
    now_ms,
)


def test_config_errors_name_file_and_key(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.yaml"
    bad.write_text("ingest:\n  batch_points: 0\n")
    result = runner.invoke(app, ["--config", str(bad)])
    assert result.exit_code == 2
    assert str(bad) in result.output and "ingest.batch_points" in result.output

    missing = tmp_path / "nope.yaml"
    result = runner.invoke(app, ["--config", str(missing)])
    assert result.exit_code == 2 and "config file not found" in result.output

    no_registry = tmp_path / "noreg.yaml"
    no_registry.write_text(f"registry: {tmp_path / 'missing-registry.yaml'}\n")
    result = runner.invoke(app, ["--config", str(no_registry)])
    assert result.exit_code == 2 and "missing-registry.yaml" in result.output and "registry" in result.output


async def test_metrics_endpoint_serves_the_service_counters(
        broker: RunningService, influx_url: str, influx_db: str, uid: str, small_registry: Registry) -> None:
    settings = make_settings(broker, influx_url, influx_db, uid)
    async with IngestService(settings, small_registry, metrics_port=0,
                             session_expiry_s=TEST_SESSION_EXPIRY_S) as svc:
        await svc.wait_subscribed()
        async with mqtt_client(broker) as pub:
            await pub.publish(f"sp/v1/p{uid}/e{uid}-0/m{uid}/telemetry", b"not json", qos=1)
            await pub.publish(f"sp/v1/p{uid}/e{uid}-0/m{uid}/telemetry",
                              telemetry_payload(1, [(now_ms(), {"active_power_kw": 1.0})]), qos=1)

        async def written() -> bool:
            return bool(svc.stats()["points_written"] == 1)
        await eventually(written, what="one point written")
        assert svc.metrics_address is not None
        host, port = svc.metrics_address
        async with httpx.AsyncClient() as http:
            r = await http.get(f"http://{host}:{port}/metrics")
            missing = await http.get(f"http://{host}:{port}/other")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert 'ingest_messages_total{kind="telemetry"} 2.0' in r.text
    assert 'ingest_rejected_total{reason="not_json"} 1.0' in r.text
    assert "ingest_points_written_total 1.0" in r.text
    assert "ingest_batch_latency_seconds_bucket" in r.text
    assert missing.status_code == 404


async def test_cli_runs_ingest_and_stops_gracefully_on_sigterm(
        broker: RunningService, influx_url: str, influx_db: str, uid: str, tmp_path: Path) -> None:
    registry_file = tmp_path / "registry.yaml"
    registry_file.write_text(yaml.safe_dump(make_registry(uid).model_dump(mode="json"), allow_unicode=True))
    metrics_port = free_port()
    config = tmp_path / "ingest.yaml"
    config.write_text(yaml.safe_dump({
        "registry": str(registry_file),
        "mqtt": {"host": broker.host, "port": broker.port},
        "influx": {"url": influx_url, "database": influx_db},
        "ingest": {"group": f"g{uid}", "client_id": f"cli-{uid}", "batch_interval_s": 0.05},
    }))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from ingest.cli import app; app()", "--config", str(config),
        "--metrics-port", str(metrics_port),
        cwd=Path(__file__).parents[2], stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        async def metrics_up() -> bool:
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).status_code == 200
            except httpx.TransportError:
                return False
        await eventually(metrics_up, within=20, what="the ingest process's metrics endpoint")
        await asyncio.sleep(0.5)  # it subscribes right after start-up
        async with mqtt_client(broker) as pub:
            await pub.publish(f"sp/v1/p{uid}/e{uid}-0/m{uid}/telemetry",
                              telemetry_payload(1, [(now_ms(), {"active_power_kw": 4.5})]), qos=1)

        async def stored() -> bool:
            return await count_points(influx_url, influx_db) == 1
        await eventually(stored, what="the point stored by the ingest process")
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout is not None
        output, _ = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, output.decode()
        assert "ingest stopping" in output.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
