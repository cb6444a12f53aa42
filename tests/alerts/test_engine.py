"""The engine with frozen time and a real webhook receiver (no broker): lifecycle, routing, concurrency."""

from __future__ import annotations

import asyncio
from pathlib import Path

from analytics.alerts.engine import AlertEngine
from analytics.alerts.store import AlertFilter, AlertStore
from parkmodel.codec import DeviceStatus, GatewayStatus
from tests.alerts.conftest import SECRET, Clock, fast, safety_registry, settings_for, subscriber
from tests.alerts.receiver import WebhookReceiver


def _events(rx: WebhookReceiver, rule: str) -> list[tuple[str, int | None, str]]:
    return [(r.json["event"], r.json["alert"]["level"], r.json["alert"]["severity"])
            for r in rx.received if r.json["alert"]["rule"] == rule]


async def test_gas_leak_raises_two_levels_escalates_clears_and_closes(tmp_path: Path, uid: str) -> None:
    reg, clock = safety_registry(uid), Clock()
    gd = f"gd{uid}"
    async with WebhookReceiver(SECRET) as rx, AlertEngine(
        settings_for(tmp_path), reg, subscribers=[subscriber("em", rx.url, categories=["safety"])],
        options=fast(), clock=clock,
    ) as eng:
        for lel in (5, 15, 26, 30, 40, 52, 55):
            await eng.observe(gd, clock.advance(1), {"lel_pct": lel, "h2s_ppm": 0.5})
        await rx.wait_for(lambda r: r.json["event"] == "raised", n=2)
        assert _events(rx, "gas_lel") == [("raised", 1, "warning"), ("raised", 2, "critical")]
        assert all(r.signed for r in rx.received)
        first = rx.received[0].json["alert"]
        assert first["limit"] == 25 and first["value"] == 26 and first["device"] == gd
        assert first["location"] == "罐区" and first["enterprise"] == f"e{uid}-0" and "可燃气体" in first["message_zh"]

        # Unacknowledged for longer than the rule's 120 s: escalated, re-notified.
        await eng.observe(gd, clock.advance(119), {"lel_pct": 56})
        await eng.tick()
        assert "escalated" not in [e for e, *_ in _events(rx, "gas_lel")]
        await eng.observe(gd, clock.advance(2), {"lel_pct": 56})
        await eng.tick()
        esc = await rx.wait_for(lambda r: r.json["event"] == "escalated")
        assert esc[0].json["alert"]["escalated"] is True

        # Below the second level but above the clear level: still open; below 20 %LEL: cleared.
        await eng.observe(gd, clock.advance(1), {"lel_pct": 30})
        await eng.observe(gd, clock.advance(1), {"lel_pct": 19})
        await rx.wait_for(lambda r: r.json["event"] == "cleared")
        alert_id = first["id"]
        assert eng.store is not None
        stored = eng.store.get(alert_id)
        assert stored is not None and stored["state"] == "cleared" and stored["count"] == 8
        closed = eng.store.acknowledge(alert_id, "zhang.san", "leak at valve V-12 isolated")
        assert closed["state"] == "closed" and closed["acked_by"] == "zhang.san"
        eng.wake()
        await rx.wait_for(lambda r: r.json["event"] == "closed")
        await eng.dispatch_once(wait=True)  # waits for the background sender to log its attempt
        assert [e for e, *_ in _events(rx, "gas_lel") if e != "updated"] == [
            "raised", "raised", "escalated", "cleared", "acknowledged", "closed"]
        assert len({r.delivery_id for r in rx.received}) == len(rx.received)
        # Every delivery is in the log with its attempt.
        log = eng.store.deliveries(alert_id)
        assert {d["state"] for d in log} == {"delivered"} and all(d["attempts"][0]["ok"] for d in log)


async def test_level_one_escalation_raises_severity(tmp_path: Path, uid: str) -> None:
    reg, clock = safety_registry(uid), Clock()
    async with AlertEngine(settings_for(tmp_path), reg, options=fast(), clock=clock) as eng:
        await eng.observe(f"gd{uid}", clock.now, {"h2s_ppm": 8})
        clock.advance(121)
        await eng.tick()
        assert eng.store is not None
        (alert,) = [a for a in eng.store.list(AlertFilter(state="raised"))[0] if a["rule"] == "gas_h2s"]
        assert alert["escalated"] and alert["severity"] == "critical"
        assert [e["event"] for e in eng.store.history(alert["id"])] == ["raised", "escalated"]


async def test_overload_reaches_only_that_enterprise(tmp_path: Path, uid: str) -> None:
    reg, clock = safety_registry(uid), Clock()
    e0, e1 = f"e{uid}-0", f"e{uid}-1"
    async with WebhookReceiver(SECRET) as rx0, WebhookReceiver(SECRET) as rx1, AlertEngine(
        settings_for(tmp_path), reg, options=fast(), clock=clock,
        subscribers=[subscriber("ent0", rx0.url, enterprises=[e0]), subscriber("ent1", rx1.url, enterprises=[e1])],
    ) as eng:
        for _ in range(21):  # 10 minutes of KPIs every 30 s; capacity 1000 kW each
            await eng.observe_kpis({"v": 1, "ts": clock.advance(30), "park": f"p{uid}", "kpi": {}, "enterprises": {
                e0: {"grid_import_kw": 1200.0, "load_kw": 1200.0}, e1: {"grid_import_kw": 400.0, "load_kw": 400.0}}})
        hit, *_ = await rx0.wait_for(lambda r: r.json["alert"]["rule"] == "demand_over_capacity")
        assert hit.json["event"] == "raised"
        alert = hit.json["alert"]
        assert alert["enterprise"] == e0 and alert["severity"] == "critical" and alert["limit"] == 1000
        assert alert["value"] == 1200 and alert["category"] == "energy"
        await eng.dispatch_once(wait=True)
        assert rx1.received == []


async def test_demand_needs_its_window_and_quota_uses_the_park_file(tmp_path: Path, uid: str) -> None:
    from analytics.alerts.rules import RuleBook, RuleSet, default_rulebook, parse_rule_file

    reg, clock = safety_registry(uid), Clock()
    e0 = f"e{uid}-0"
    base = default_rulebook().default
    park = RuleSet.of(parse_rule_file({"version": 1, "rules": [r.model_dump(by_alias=True) for r in base.rules],
                                       "quotas": {e0: 1000}}, "park.yaml"))
    book = RuleBook(base, {f"p{uid}": park})
    async with AlertEngine(settings_for(tmp_path), reg, book, options=fast(), clock=clock) as eng:
        assert eng.store is not None
        for consumed in (500, 850, 950, 1010):
            await eng.observe_kpis({f"p{uid}": {"kpi": {}, "enterprises": {
                e0: {"grid_import_kw": 5000.0, "consumed_today_kwh": float(consumed)}}}}, ts_ms=clock.advance(60))
        items, _ = eng.store.list(AlertFilter(enterprise=e0))
        by_rule = {a["rule"]: a for a in items}
        assert by_rule["daily_energy_quota"]["severity"] == "critical" and by_rule["daily_energy_quota"]["level"] == 2
        assert "demand_over_capacity" not in by_rule  # 4 minutes of data: below the 5-minute minimum window


async def test_receiver_down_gets_everything_later_in_order_once(tmp_path: Path, uid: str) -> None:
    reg = safety_registry(uid)
    rx = WebhookReceiver(SECRET)  # not started: connection refused
    async with AlertEngine(settings_for(tmp_path), reg, options=fast(),
                           subscribers=[subscriber("em", rx.url, categories=["safety"])]) as eng:
        assert eng.store is not None
        gd, fire = f"gd{uid}", f"fire{uid}"
        t = eng.clock()
        for i, lel in enumerate((30, 60, 10)):
            await eng.observe(gd, t + i, {"lel_pct": lel})
        await eng.observe_event(fire, t + 5, "smoke_alarm", 1)
        await eng.observe(gd, t + 6, {"co_ppm": 40})
        expected = 5  # raised, raised, cleared (gas_lel), raised (fire), raised (co)
        async with asyncio.timeout(10):
            while sum(len(d["attempts"]) for a in eng.store.list()[0] for d in eng.store.deliveries(a["id"])) < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        async with rx:
            got = await rx.wait_for(lambda r: True, n=expected)
            await asyncio.sleep(0.3)  # nothing more, nothing twice
        pairs = [(r.json["alert"]["rule"], r.json["event"]) for r in rx.received]
        assert pairs == [("gas_lel", "raised"), ("gas_lel", "raised"), ("gas_lel", "cleared"),
                         ("fire_alarm", "raised"), ("gas_co", "raised")]
        assert len(got) == expected and len({r.delivery_id for r in rx.received}) == expected
        first = eng.store.deliveries(rx.received[0].json["alert"]["id"])[0]
        assert first["state"] == "delivered" and len(first["attempts"]) >= 2
        assert [a["ok"] for a in first["attempts"]][-1] is True and not first["attempts"][0]["ok"]
        assert "ConnectError" in first["attempts"][0]["error"]


async def test_two_engines_on_one_file_keep_one_open_alert(tmp_path: Path, uid: str) -> None:
    reg = safety_registry(uid)
    settings = settings_for(tmp_path)
    async with AlertEngine(settings, reg, options=fast()) as a, AlertEngine(settings, reg, options=fast()) as b:
        gd = f"gd{uid}"
        t = a.clock()
        await asyncio.gather(*(eng.observe(gd, t + i, {"lel_pct": 30.0 + i % 3})
                               for i in range(40) for eng in (a, b)))
        assert a.store is not None
        items, total = a.store.list(AlertFilter(categories=("safety",)))
        assert total == 1 and items[0]["count"] == 80 and items[0]["state"] == "raised"
        assert next(e["event"] for e in a.store.history(items[0]["id"])) == "raised"


def test_two_stores_racing_threads_keep_one_open_alert(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from analytics.alerts.store import AlertDraft

    draft = AlertDraft(rule="gas_lel", source="device/x", category="safety", severity="warning", level=1, park="p",
                       enterprise="e", device="x", point="lel_pct", location="", value=30, limit=25,
                       message_zh="", message_en="")
    stores = [AlertStore(tmp_path / "a.sqlite") for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda i: stores[i % 4].raise_or_repeat(draft, change="raise"), range(200)))
        assert sum(1 for r in results for e, _ in r if e == "raised") == 1
        items, total = stores[0].list()
        assert total == 1 and items[0]["count"] == 200
    finally:
        for s in stores:
            s.close()


async def test_stale_device_and_gateway_will(tmp_path: Path, uid: str) -> None:
    reg, clock = safety_registry(uid), Clock()
    gd = f"gd{uid}"
    async with AlertEngine(settings_for(tmp_path), reg, options=fast(), clock=clock) as eng:
        assert eng.store is not None
        await eng.observe(gd, clock.now, {"lel_pct": 0})
        await eng.tick(clock.advance(4))
        assert eng.store.list()[1] == 0
        await eng.tick(clock.advance(2))  # 6 s > 5 intervals of 1 s
        (alert,), _ = eng.store.list()
        assert alert["rule"] == "safety_device_offline" and alert["device"] == gd
        await eng.observe(gd, clock.advance(1), {"lel_pct": 0})
        await eng.tick()
        assert eng.store.get(alert["id"])["state"] == "cleared"

        will = GatewayStatus(v=1, state="offline", ts=0, devices={})
        await eng.observe_status(f"g{uid}-0", will)
        open_rules = {a["rule"]: a for a in eng.store.list(AlertFilter(state="raised"))[0]}
        assert set(open_rules) == {"gateway_offline", "safety_device_offline", "meter_offline"} or \
            {"gateway_offline", "safety_device_offline"} <= set(open_rules)
        online = GatewayStatus(v=1, state="online", ts=clock.now, devices={
            d: DeviceStatus(online=True) for d in (gd, f"fire{uid}", f"m{uid}")})
        await eng.observe(gd, clock.advance(1), {"lel_pct": 0})
        await eng.observe_status(f"g{uid}-0", online)
        await eng.tick()
        assert eng.store.list(AlertFilter(state="raised"))[1] == 0


async def test_state_survives_a_restart(tmp_path: Path, uid: str) -> None:
    reg, clock = safety_registry(uid), Clock()
    settings = settings_for(tmp_path)
    async with AlertEngine(settings, reg, options=fast(), clock=clock) as eng:
        await eng.observe(f"gd{uid}", clock.advance(1), {"co_ppm": 20})
    async with AlertEngine(settings, reg, options=fast(), clock=clock) as eng:
        assert eng.store is not None
        await eng.observe(f"gd{uid}", clock.advance(1), {"co_ppm": 25})  # a repeat, not a new alert
        await eng.observe(f"gd{uid}", clock.advance(1), {"co_ppm": 3})
        (alert,), total = eng.store.list()
        assert total == 1 and alert["state"] == "cleared" and alert["count"] == 2


async def test_fire_event_and_telemetry_fold_into_one_alert(tmp_path: Path, uid: str) -> None:
    reg, clock = safety_registry(uid), Clock()
    async with AlertEngine(settings_for(tmp_path), reg, options=fast(), clock=clock) as eng:
        assert eng.store is not None
        await eng.observe_event(f"fire{uid}", clock.advance(1), "smoke_alarm", 1)
        await eng.observe(f"fire{uid}", clock.advance(1), {"smoke_alarm": 1})
        (alert,), _ = eng.store.list()
        assert alert["rule"] == "fire_alarm" and alert["severity"] == "critical" and alert["count"] == 2
        await eng.observe_event(f"fire{uid}", clock.advance(1), "smoke_alarm", 0)
        assert eng.store.get(alert["id"])["state"] == "cleared"


async def test_rate_limit_suppresses_repeats_and_reminders_repeat_unacked(tmp_path: Path, uid: str) -> None:
    from analytics.alerts.subscribers import Subscriber

    reg, clock = safety_registry(uid), Clock()
    async with WebhookReceiver(SECRET) as rx:
        sub = Subscriber(id="em", url=rx.url, secret=SECRET.decode(), max_per_minute=2, reminder_interval_s=600)
        async with AlertEngine(settings_for(tmp_path), reg, subscribers=[sub], options=fast(), clock=clock) as eng:
            assert eng.store is not None
            for _ in range(4):  # raised, then 'updated' every 60 s (the rule's update interval)
                await eng.observe(f"gd{uid}", clock.advance(20), {"co_ppm": 20})
            for _ in range(3):
                await eng.observe(f"gd{uid}", clock.advance(61), {"co_ppm": 20})
            await eng.dispatch_once(wait=True)
            (alert,), _ = eng.store.list()
            states = [(d["event"], d["state"]) for d in eng.store.deliveries(alert["id"])]
            assert states[0] == ("raised", "delivered") and ("updated", "suppressed") in states
            assert sum(1 for r in rx.received if r.json["event"] == "updated") <= 2
            clock.advance(601)
            await eng.dispatch_once(wait=True)
            reminders = [r.json for r in rx.received if r.json.get("reminder")]
            assert len(reminders) == 1 and reminders[0]["alert"]["state"] == "raised"


async def test_baseline_flags_an_off_hours_load_far_above_usual(tmp_path: Path, uid: str) -> None:
    from analytics.alerts.logic import HOUR_MS, WEEK_MS, beijing_hour_start

    reg = safety_registry(uid)
    e0 = f"e{uid}-0"
    hour = beijing_hour_start(1_718_979_000_000)  # 2024-06-21 22:00 Beijing (Friday night)
    clock = Clock(hour)
    async with AlertEngine(settings_for(tmp_path), reg, options=fast(), clock=clock) as eng:
        assert eng.store is not None
        for w, kw in zip(range(1, 5), (100.0, 104.0, 97.0, 101.0), strict=True):
            eng.store.save_hour(e0, hour - w * WEEK_MS, kw, 100)
        for minute in (0, 20, 40, 61):
            await eng.observe_kpis({"v": 1, "ts": hour + minute * 60_000, "park": f"p{uid}", "kpi": {},
                                    "enterprises": {e0: {"load_kw": 300.0}}})
        rules = {a["rule"]: a for a in eng.store.list(AlertFilter(enterprise=e0))[0]}
        assert set(rules) == {"base_load_high", "load_anomaly"}
        assert rules["load_anomaly"]["value"] == 300 and rules["load_anomaly"]["limit"] == 100.5
        assert eng.store.hourly([e0], [hour]) == {(e0, hour): 300.0}
        for minute in (80, 100, 125):  # a normal hour clears both
            await eng.observe_kpis({"v": 1, "ts": hour + minute * 60_000, "park": f"p{uid}", "kpi": {},
                                    "enterprises": {e0: {"load_kw": 100.0}}})
        assert eng.store.list(AlertFilter(enterprise=e0, state="raised"))[1] == 0
        assert HOUR_MS == 3_600_000
