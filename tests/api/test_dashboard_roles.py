"""Each role in a real headless Chromium: where it lands, live numbers changing, alerts arriving live and being
acknowledged, language switch, device view; a screenshot of every view lands in tmp_path."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiomqtt
import orjson

from deploy.services import RunningService
from parkmodel.topics import alerts_topic, kpi_topic, safety_topic
from tests.api.conftest import ServeFactory, wait_connected
from tests.api.scoped import scoped_registry
from tests.api.test_dashboard_browser import browser, eventually, in_thread, login  # noqa: F401
from tests.api.test_live_scoping import alert
from tests.api.test_telemetry_routes import write_lines


def text(selector: str) -> str:
    return f"return document.querySelector({selector!r})?.textContent ?? null"


async def publish(broker: RunningService, topic: str, message: dict[str, Any]) -> None:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.publish(topic, orjson.dumps(message), qos=1)


def park_message(uid: str, load_e1: float) -> dict[str, Any]:
    a = f"a{uid}"
    e1 = {"load_kw": load_e1, "consumed_today_kwh": 1200.0, "tce_today": 0.1475, "co2_today_kg": 684.0}
    e2 = {"load_kw": 300.0, "consumed_today_kwh": 900.0, "tce_today": 0.11, "co2_today_kg": 513.0}
    kpi = {"load_kw": load_e1 + 300, "generation_kw": 150.0, "pv_kw": 120.0, "wind_kw": 30.0, "grid_import_kw": load_e1 + 150,
           "grid_export_kw": 0.0, "green_supply_kw": 0.0, "storage_kw": 0.0, "consumed_today_kwh": 2100.0,
           "new_energy_ratio_today": 0.31}
    return {"v": 1, "ts": int(time.time() * 1000), "park": a, "kpi": kpi, "enterprises": {f"{a}-e1": e1, f"{a}-e2": e2}}


def raise_stored_alert(var_dir: Path, park: str, enterprise: str) -> str | None:
    """An open energy alert in the alert engine's store (None when the alerts work is not there)."""
    try:
        from analytics.alerts.store import AlertDraft, AlertStore
    except ImportError:
        return None
    store = AlertStore(var_dir / "alerts.sqlite")
    try:
        store.raise_or_repeat(AlertDraft(
            rule="demand_over_capacity", source=f"enterprise/{enterprise}", category="energy", severity="warning",
            level=None, park=park, enterprise=enterprise, device=None, point="active_power_kw", location="",
            value=850.0, limit=800.0, message_zh="需量超过合同容量", message_en="Demand above contracted capacity"),
            change="raise")
        items, _ = store.list()
        return str(items[0]["id"])
    finally:
        store.close()


async def shot(browser: Any, tmp_path: Path, name: str) -> None:  # noqa: F811
    await asyncio.sleep(0.4)  # let charts draw
    path = tmp_path / f"{name}.png"
    await in_thread(browser.save_screenshot, str(path))
    assert path.stat().st_size > 10_000


async def test_each_role_sees_its_views_live(serve: ServeFactory, broker: RunningService, browser: Any,  # noqa: F811
                                             uid: str, tmp_path: Path, influx_url: str, influx_db: str) -> None:
    a, e1 = f"a{uid}", f"a{uid}-e1"
    now = int(time.time() * 1000)
    write_lines(influx_url, influx_db, [
        *(f"telemetry,park={a},enterprise={e1},device={a}-m1,role=grid_meter active_power_kw={400 + i % 7 * 10},"
          f"energy_import_kwh={10000 + i},voltage_v=398 {now - (120 - i) * 30_000}" for i in range(120)),
        *(f"kpi,scope=park,park={a} load_kw={500 + i},generation_kw={100 + i % 10} {now - (96 - i) * 900_000}"
          for i in range(96)),
    ])
    async with serve(scoped_registry(uid)) as api:
        await wait_connected(api)
        for user, role, ent in (("ent1", "enterprise", e1), ("emg", "emergency", None), ("ops", "operations", None)):
            api.store.create_user(user, f"{user}-password", role, ent)
        stored = raise_stored_alert(Path(api.settings.var_dir), a, e1)

        # Enterprise user: lands on its enterprise, sees its meters, live load against capacity, live alerts.
        await login(browser, api.url, "ent1", "ent1-password")
        await eventually(browser, "return location.hash", lambda h: h == f"#/enterprise/{e1}", "enterprise landing")
        await eventually(browser, "return document.querySelectorAll('#ent-devices tr').length", lambda n: n == 2,
                         "its two devices")
        await eventually(browser, text(f"#ent-devices tr[data-device='{a}-m1'] .badge"), lambda s: s == "在线",
                         "meter online")
        await publish(broker, kpi_topic(a), park_message(uid, 420.0))
        await eventually(browser, text("#ent-demand"), lambda s: s == "420.0 kW / 800.0 kW", "live demand")
        await publish(broker, kpi_topic(a), park_message(uid, 515.5))
        await eventually(browser, text("#ent-demand"), lambda s: s.startswith("515.5 kW"), "demand changes live")
        assert await in_thread(browser.execute_script, text("[data-ekpi=tce_today]")) == "0.148 tce"
        await publish(broker, alerts_topic(a, e1), {"v": 1, "event": "raised",
                                                    "alert": alert(uid, "energy", e1, f"{a}-m1")})
        await eventually(browser, "return document.querySelectorAll('#ent-alerts li.alert').length",
                         lambda n: n == 1 + (stored is not None), "live alert listed")
        if stored is not None:  # acknowledge the stored alert through the alerts routes
            await in_thread(browser.execute_script, f"document.querySelector('#ent-alerts .ack[data-alert=\"{stored}\"]').click()")
            await eventually(browser, f"return document.querySelector('#ent-alerts li[data-alert=\"{stored}\"]').dataset.state",
                             lambda s: s == "acknowledged", "alert acknowledged")
            async with api.client("operations", prefix="/api/v1") as ops:
                acked = (await ops.get(f"/alerts/{stored}")).json()
            assert acked["state"] == "acknowledged" and acked["acked_by"] == "ent1"
        await shot(browser, tmp_path, "enterprise-zh")
        await in_thread(browser.execute_script, "document.getElementById('lang-toggle').click()")
        await eventually(browser, text("#ent-alerts .ack"), lambda s: s == "Acknowledge", "English labels")
        await shot(browser, tmp_path, "enterprise-en")
        await in_thread(browser.execute_script, "document.getElementById('lang-toggle').click()")
        # Another enterprise's page is out of scope: the dashboard goes back home.
        await in_thread(browser.execute_script, f"location.hash = '#/enterprise/{a}-e2'")
        await eventually(browser, "return location.hash", lambda h: h == f"#/enterprise/{e1}", "sent back home")

        # Device view: latest values, online badge, history chart.
        await in_thread(browser.execute_script, f"location.hash = '#/device/{a}-m1'")
        await eventually(browser, "return document.querySelectorAll('#dev-latest tr').length", lambda n: n == 3,
                         "latest values")
        assert await in_thread(browser.execute_script, text("#dev-online")) == "在线"
        await shot(browser, tmp_path, "device")
        await in_thread(browser.execute_script, "document.getElementById('logout').click()")
        await eventually(browser, "return location.hash", lambda h: h == "#/login", "signed out")

        # Emergency management: safety events live, nothing of energy.
        await login(browser, api.url, "emg", "emg-password")
        await eventually(browser, "return location.hash", lambda h: h == "#/emergency", "emergency landing")
        await eventually(browser, "return document.getElementById('conn-status').dataset.state",
                         lambda s: s == "live", "socket live")
        await publish(broker, safety_topic(a), {"v": 1, "event": "raised",
                                                "alert": alert(uid, "safety", f"{a}-e2", f"{a}-fire2", "critical")})
        await eventually(browser, "return document.querySelectorAll('#safety-list li.sev-critical').length",
                         lambda n: n == 1, "safety event listed live")
        meta = await in_thread(browser.execute_script, text("#safety-list .meta"))
        assert "车间" in meta and f"{a}-fire2" in meta
        await shot(browser, tmp_path, "emergency")
        await in_thread(browser.execute_script, "document.getElementById('logout').click()")

        # Operations: the park view with live power flow, ranking and the 24-hour curve.
        await login(browser, api.url, "ops", "ops-password")
        await eventually(browser, "return location.hash", lambda h: h == "#/overview", "operations landing")
        await in_thread(browser.execute_script, f"location.hash = '#/park/{a}'")
        await eventually(browser, "return document.querySelectorAll('#ranking tr').length", lambda n: n == 2,
                         "ranking rows")
        await publish(broker, kpi_topic(a), park_message(uid, 700.0))
        await eventually(browser, text("#view-park [data-kpi=load_kw]"), lambda s: s == "1.00 MW",
                         "live load in the flow")
        ranked = await in_thread(browser.execute_script,
                                 "return [...document.querySelectorAll('#ranking tr')].map(r => r.dataset.enterprise)")
        assert ranked == [e1, f"{a}-e2"]
        await in_thread(browser.execute_script, "document.querySelector('[data-rank=intensity]').click()")
        ranked = await in_thread(browser.execute_script,
                                 "return [...document.querySelectorAll('#ranking tr')].map(r => r.dataset.enterprise)")
        assert ranked == [e1, f"{a}-e2"]  # 1200/50 = 24 > 900/100 = 9 kWh per mu
        await shot(browser, tmp_path, "park")
        await in_thread(browser.execute_script, "location.hash = '#/overview'")
        await shot(browser, tmp_path, "overview")
