"""Registry edits reach the live KPI service without a restart (issue 5), against the real Mosquitto and influxd."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import pytest
import yaml

from analytics.devices import N_COUNTERS, build_index
from analytics.service import AnalyticsService
from analytics.state import StreamState
from deploy.services import RunningService
from parkmodel.codec import telemetry_payload
from parkmodel.registry import Registry
from parkmodel.topics import telemetry_topic
from parkmodel.watch import RegistryWatcher
from tests.analytics.test_service import make_settings
from tests.conftest import make_registry

pytestmark = pytest.mark.integration


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def devices(uid: str, *, extra: bool = False, pv: bool = True) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"id": f"m{uid}", "role": "grid_meter", "template": "acrel_dtsd1352"}]
    if pv:
        out.append({"id": f"pv{uid}", "role": "pv", "template": "huawei_sun2000", "rated_kw": 100})
    if extra:
        out.append({"id": f"m2{uid}", "role": "grid_meter", "template": "acrel_dtsd1352"})
    return out


def write_atomic(path: Path, data: Any) -> None:
    """Replace the file as the API does (temporary file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    tmp.replace(path)


def dump(registry: Registry) -> dict[str, Any]:
    return registry.model_dump(mode="json", exclude_defaults=True)


async def until(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    """Poll what another task changes (the watch, the engine) until `condition` holds."""
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110 - the state belongs to the service under test
            await asyncio.sleep(0.05)


def test_migrated_state_keeps_devices_by_id_and_drops_removed_ones(uid: str) -> None:
    old = build_index(make_registry(uid, devices(uid)))
    new = build_index(make_registry(uid, list(reversed(devices(uid, extra=True, pv=False)))))
    t = now_ms()
    state = StreamState(old, t)
    m = old.position[f"m{uid}"]
    state.update(np.array([m, m]), np.array([t - 2000, t - 1000]), np.array([0, 0]), np.array([100.0, 107.0]), t)
    moved = state.migrated(new)
    m_new = new.position[f"m{uid}"]
    assert new.position[f"m2{uid}"] != m_new  # the order changed: matching is by id, not position
    assert moved.today[m_new * N_COUNTERS] == pytest.approx(7.0)
    assert moved.month[m_new * N_COUNTERS] == pytest.approx(7.0)
    assert moved.anchor_value[m_new * N_COUNTERS] == 107.0
    assert moved.today.sum() == pytest.approx(7.0) and moved.today.shape == (new.n_series,)
    assert np.isnan(moved.anchor_value[new.position[f"m2{uid}"] * N_COUNTERS])
    # Demand rows follow their grid meter too.
    row_old = old.demand_row[m * N_COUNTERS]
    row_new = new.demand_row[m_new * N_COUNTERS]
    np.testing.assert_array_equal(moved.quarter_energy[row_new], state.quarter_energy[row_old])
    assert moved.day_start_ms == state.day_start_ms


async def test_registry_edits_reach_the_kpis_without_restart(
    broker: RunningService, influx_url: str, influx_db: str, uid: str, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    park, ent, meter, meter2 = f"p{uid}", f"e{uid}-0", f"m{uid}", f"m2{uid}"
    registry = make_registry(uid, devices(uid))
    settings = make_settings(broker, influx_url, influx_db, uid, tmp_path).model_copy(
        update={"registry": tmp_path / "registry.yaml"})
    write_atomic(settings.registry, dump(registry))

    def kpi(key: str) -> float | None:
        msg = svc.snapshot().get(park)
        return None if msg is None else msg["kpi"][key]

    async with (
        AnalyticsService(settings, registry, registry_poll_s=0.1) as svc,
        aiomqtt.Client(broker.host, broker.port, identifier=f"t-{uid}") as client,
    ):
        async with asyncio.timeout(10):
            await svc.wait_subscribed()
        t = now_ms()
        await client.publish(telemetry_topic(park, ent, meter), telemetry_payload(1, [
            (t - 2000, {"energy_import_kwh": 1000.0}), (t - 1000, {"energy_import_kwh": 1010.0})]), qos=1)
        await until(lambda: kpi("grid_import_today_kwh") == pytest.approx(10.0) and kpi("devices_total") == 2.0)

        # An admin adds a grid meter: its telemetry counts in the KPIs, the first meter keeps its energy.
        write_atomic(settings.registry, dump(make_registry(uid, devices(uid, extra=True))))
        await until(lambda: meter2 in svc.index.position)
        t = now_ms()
        await client.publish(telemetry_topic(park, ent, meter2), telemetry_payload(1, [
            (t - 2000, {"energy_import_kwh": 500.0}), (t - 1000, {"energy_import_kwh": 503.0})]), qos=1)
        await until(lambda: kpi("grid_import_today_kwh") == pytest.approx(13.0) and kpi("devices_total") == 3.0)
        assert kpi("devices_reporting") == 2.0
        assert svc.snapshot()[park]["enterprises"][ent]["grid_import_today_kwh"] == pytest.approx(13.0)
        assert svc.stats["unknown_device"] == 0

        # The PV inverter is removed: it drops out of the KPIs, the meters keep today's energy.
        write_atomic(settings.registry, dump(make_registry(uid, devices(uid, extra=True, pv=False))))
        await until(lambda: kpi("devices_total") == 2.0)
        assert kpi("grid_import_today_kwh") == pytest.approx(13.0)
        await client.publish(telemetry_topic(park, ent, f"pv{uid}"), telemetry_payload(2, [
            (now_ms(), {"energy_export_kwh": 1.0})]), qos=1)
        await until(lambda: svc.stats["unknown_device"] == 1)

        # An invalid file is logged with the file and the key; the last good registry stays.
        assert svc.watcher is not None
        bad = dump(svc.registry)
        bad["parks"][0]["enterprises"][0]["gateways"][0]["devices"][0]["role"] = "toaster"
        with caplog.at_level(logging.ERROR, logger="parkmodel.watch"):
            write_atomic(settings.registry, bad)
            await until(lambda: svc.watcher is not None and svc.watcher.failures == 1)
        assert str(settings.registry) in caplog.text and "role" in caplog.text
        assert svc.watcher.last_error is not None and "devices.0.role" in svc.watcher.last_error
        await asyncio.sleep(0.6)  # another publish round
        assert kpi("devices_total") == 2.0 and meter in svc.index.position

    # The checkpoint written on the way out is taken back by a service built on another registry, by id.
    async with AnalyticsService(settings, make_registry(uid, devices(uid)), watch_registry=False) as svc2:
        assert svc2.compute()[park]["kpi"]["grid_import_today_kwh"] == pytest.approx(10.0)


async def test_watcher_calls_back_only_for_valid_changes(uid: str, tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    write_atomic(path, dump(make_registry(uid)))
    seen: list[Registry] = []
    async with RegistryWatcher(path, seen.append, interval_s=3600) as watcher:
        assert not await watcher.check()  # unchanged
        write_atomic(path, dump(make_registry(uid, devices(uid, extra=True))))
        assert await watcher.check()
        assert seen[-1].device(f"m2{uid}") is not None
        path.write_text("parks: [", encoding="utf-8")
        assert not await watcher.check()
        assert watcher.last_error is not None and "not valid YAML" in watcher.last_error
        path.unlink()
        assert not await watcher.check() and "not found" in (watcher.last_error or "")
        write_atomic(path, dump(make_registry(uid)))
        assert await watcher.check() and len(seen) == 2
