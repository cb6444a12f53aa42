"""Open alerts and safety events in a real headless Chromium: counts on the park cards loaded from the store and
changed live by WebSocket frames, the operations alerts view listing them, acknowledgement with a comment,
language switch; screenshots land in tmp_path."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from analytics.alerts.store import AlertDraft, AlertStore
from deploy.services import RunningService
from parkmodel.topics import alerts_topic, safety_topic
from tests.api.conftest import ServeFactory, wait_connected
from tests.api.scoped import scoped_registry
from tests.api.test_dashboard_browser import browser, eventually, in_thread, login  # noqa: F401
from tests.api.test_dashboard_roles import publish
from tests.api.test_live_scoping import alert


def count(park: str, kind: str) -> str:
    return f"return document.querySelector('#park-{park} [data-open={kind}] .n')?.textContent ?? null"


def cell(alert_id: str, n: int) -> str:
    return f"return document.querySelector('#alerts-body tr[data-alert=\"{alert_id}\"] td:nth-child({n})')?.textContent"


def stored_alerts(var_dir: Path, park: str, enterprise: str, detector: str) -> tuple[str, str]:
    """An open energy alert and an open safety event (level 2) in the alert engine's store: their ids."""
    store = AlertStore(var_dir / "alerts.sqlite")
    try:
        energy = store.raise_or_repeat(AlertDraft(
            rule="demand_over_capacity", source=f"enterprise/{enterprise}", category="energy", severity="warning",
            level=None, park=park, enterprise=enterprise, device=None, point="active_power_kw", location="配电室",
            value=850.0, limit=800.0, message_zh="需量超过合同容量", message_en="Demand above contracted capacity"),
            change="raise")
        safety = store.raise_or_repeat(AlertDraft(
            rule="gas_lel", source=f"device/{detector}", category="safety", severity="critical", level=2,
            park=park, enterprise=enterprise, device=detector, point="lel_pct", location="1 号车间",
            value=42.0, limit=25.0, message_zh="可燃气体浓度二级报警", message_en="Combustible gas level 2"),
            change="raise")
        return str(energy[0][1]["id"]), str(safety[0][1]["id"])
    finally:
        store.close()


async def shot(browser: Any, tmp_path: Path, name: str) -> Path:  # noqa: F811
    await asyncio.sleep(0.4)
    path = tmp_path / f"{name}.png"
    await in_thread(browser.save_screenshot, str(path))
    assert path.stat().st_size > 10_000
    return path


async def test_open_alerts_on_cards_and_in_the_alerts_view(serve: ServeFactory, broker: RunningService,
                                                           browser: Any, uid: str, tmp_path: Path) -> None:  # noqa: F811
    a, b, e1 = f"a{uid}", f"b{uid}", f"a{uid}-e1"
    async with serve(scoped_registry(uid)) as api:
        await wait_connected(api)
        api.store.create_user("ops", "ops-password", "operations")
        energy_id, safety_id = stored_alerts(Path(api.settings.var_dir), a, e1, f"{a}-gas1")

        # Page load: the counts come from GET /alerts and /safety-events.
        await login(browser, api.url, "ops", "ops-password")
        await eventually(browser, "return document.querySelectorAll('.card').length", lambda n: n == 2, "2 cards")
        await eventually(browser, count(a, "alerts"), lambda s: s == "1", "park A: one open alert")
        assert await in_thread(browser.execute_script, count(a, "safety")) == "1"
        assert await in_thread(browser.execute_script, count(b, "alerts")) == "0"
        assert await in_thread(browser.execute_script, count(b, "safety")) == "0"
        await eventually(browser, "return document.getElementById('conn-status').dataset.state",
                         lambda s: s == "live", "connection live")

        # Live: a safety event in park A and an energy alert in park B change the cards.
        live_safety = alert(uid, "safety", e1, f"{a}-gas1", "critical")
        await publish(broker, safety_topic(a), {"v": 1, "event": "raised", "alert": live_safety})
        await eventually(browser, count(a, "safety"), lambda s: s == "2", "park A safety count rises live")
        live_energy = {**alert(uid, "energy", f"{b}-e1", f"{b}-m1"), "park": b, "point": "active_power_kw",
                       "value": 910.0, "limit": 800.0, "location": "配电室", "message_zh": "负荷越限"}
        await publish(broker, alerts_topic(b, f"{b}-e1"), {"v": 1, "event": "raised", "alert": live_energy})
        await eventually(browser, count(b, "alerts"), lambda s: s == "1", "park B alert count rises live")
        assert await in_thread(browser.execute_script,
                               f"return document.querySelector('#park-{a} [data-open=safety]').classList.contains('critical')")
        await eventually(browser, "return document.getElementById('nav-alerts-count').textContent",
                         lambda s: s == "4", "nav badge counts unacknowledged")
        await shot(browser, tmp_path, "overview-open-alerts")

        # The alerts view lists every open item of every park with severity, location, device, value, limit.
        await in_thread(browser.execute_script, "location.hash = '#/alerts'")
        await eventually(browser, "return document.querySelectorAll('#alerts-body tr').length", lambda n: n == 4,
                         "four open items listed")
        assert await in_thread(browser.execute_script, cell(safety_id, 1)) == "二级"
        assert await in_thread(browser.execute_script, cell(safety_id, 4)) == "1 号车间"
        assert await in_thread(browser.execute_script, cell(safety_id, 5)) == f"{a}-gas1"
        assert await in_thread(browser.execute_script, cell(safety_id, 7)) == "42.00 %"
        assert await in_thread(browser.execute_script, cell(safety_id, 8)) == "25.00 %"
        assert await in_thread(browser.execute_script, cell(energy_id, 7)) == "850.00 kW"
        assert (await in_thread(browser.execute_script, cell(live_energy["id"], 3))).startswith("乙园区")
        # Filter by park.
        await in_thread(browser.execute_script, f"""
            const s = document.getElementById('alerts-park'); s.value = {b!r}; s.dispatchEvent(new Event('change'));""")
        await eventually(browser, "return document.querySelectorAll('#alerts-body tr').length", lambda n: n == 1,
                         "park B only")
        await in_thread(browser.execute_script, """
            const s = document.getElementById('alerts-park'); s.value = ''; s.dispatchEvent(new Event('change'));""")

        # Acknowledge with a comment: the store records it, the row shows who, the card still counts it (open).
        await in_thread(browser.execute_script, f"""
            document.querySelector('#alerts-body input[data-comment="{energy_id}"]').value = '已通知企业降负荷';
            document.querySelector('#alerts-body button[data-alert="{energy_id}"]').click();""")
        await eventually(browser, f"return document.querySelector('#alerts-body tr[data-alert=\"{energy_id}\"]')"
                         ".dataset.state", lambda s: s == "acknowledged", "alert acknowledged")
        assert "已通知企业降负荷" in await in_thread(browser.execute_script, cell(energy_id, 11))
        async with api.client("operations", prefix="/api/v1") as ops:
            acked = (await ops.get(f"/alerts/{energy_id}")).json()
        assert (acked["state"], acked["acked_by"], acked["ack_comment"]) == ("acknowledged", "ops", "已通知企业降负荷")
        await eventually(browser, "return document.getElementById('nav-alerts-count').textContent",
                         lambda s: s == "3", "one fewer unacknowledged")
        await shot(browser, tmp_path, "alerts-zh")

        # A live "closed" frame removes the item from the list and the card.
        await publish(broker, safety_topic(a), {"v": 1, "event": "closed", "alert": {**live_safety, "state": "closed"}})
        await eventually(browser, "return document.querySelectorAll('#alerts-body tr').length", lambda n: n == 3,
                         "closed event leaves the list")
        await in_thread(browser.execute_script, "document.getElementById('lang-toggle').click()")
        await eventually(browser, cell(safety_id, 1), lambda s: s == "Level 2", "English severity")
        assert await in_thread(browser.execute_script, cell(safety_id, 2)) == "Safety"
        await shot(browser, tmp_path, "alerts-en")
        await in_thread(browser.execute_script, "location.hash = '#/overview'")
        await eventually(browser, count(a, "safety"), lambda s: s == "1", "park A back to one safety event")
        await shot(browser, tmp_path, "overview-en")
