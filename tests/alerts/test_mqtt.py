"""Through the real broker: telemetry and KPIs in over MQTT, alerts out on the contract topics and webhooks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import orjson

from analytics.alerts.engine import AlertEngine
from analytics.alerts.rules import RuleBook, RuleSet, default_rulebook, parse_rule_file
from deploy.services import RunningService
from parkmodel.codec import encode, telemetry_payload
from parkmodel.topics import kpi_topic, status_topic, telemetry_topic
from tests.alerts.conftest import SECRET, fast, safety_registry, settings_for, subscriber
from tests.alerts.receiver import WebhookReceiver


def quick_rules(**changes: dict[str, Any]) -> RuleBook:
    """The shipped rules with some keys changed (so a test need not wait minutes)."""
    base = default_rulebook().default
    rules = [r.model_dump(by_alias=True) | changes.get(r.id, {}) for r in base.rules]
    rs = RuleSet.of(parse_rule_file({"version": 1, "rules": rules}, "test"))
    return RuleBook(rs, {})


@contextlib.asynccontextmanager
async def listener(broker: RunningService, uid: str, *topics: str) -> AsyncIterator[list[tuple[str, dict]]]:
    got: list[tuple[str, dict]] = []
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"listen-{uid}") as client:
        for t in topics:
            await client.subscribe(t, qos=1)

        async def collect() -> None:
            async for m in client.messages:
                got.append((m.topic.value, orjson.loads(m.payload)))

        task = asyncio.create_task(collect(), name=f"listen-{uid}")
        try:
            yield got
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def until(predicate: Any, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polls what another client received
            await asyncio.sleep(0.02)


async def test_gas_leak_over_mqtt_raises_escalates_and_clears(tmp_path: Path, uid: str,
                                                              broker: RunningService) -> None:
    reg = safety_registry(uid)
    park, ent, gd = f"p{uid}", f"e{uid}-0", f"gd{uid}"
    book = quick_rules(gas_lel={"escalate_after_s": 1.0})
    opts = fast(publish_mqtt=True, subscribe=True, client_id=f"alerts-{uid}", group=f"g{uid}", tick_s=0.2)
    async with (
        WebhookReceiver(SECRET) as rx,
        listener(broker, uid, f"sp/v1/{park}/safety", f"sp/v1/{park}/+/alerts") as heard,
        AlertEngine(settings_for(tmp_path, broker), reg, book, options=opts,
                    subscribers=[subscriber("em", rx.url, parks=[park], categories=["safety"])]) as eng,
        aiomqtt.Client(broker.host, broker.port, identifier=f"gw-{uid}") as gw,
    ):
        async with asyncio.timeout(10):
            await eng.wait_connected()
        topic = telemetry_topic(park, ent, gd)
        t = eng.clock()
        for seq, lel in enumerate((5, 20, 27, 35, 51)):
            await gw.publish(topic, telemetry_payload(seq, [(t + seq * 100, {"lel_pct": float(lel)})]), qos=1)
        raised = await rx.wait_for(lambda r: r.json["event"] == "raised" and r.json["alert"]["rule"] == "gas_lel", n=2)
        assert [r.json["alert"]["level"] for r in raised] == [1, 2] and all(r.signed for r in raised)
        await until(lambda: sum(1 for tp, m in heard if m["event"] == "raised") >= 2)
        assert {tp for tp, _ in heard} == {f"sp/v1/{park}/safety"}  # safety never on an enterprise topic

        esc = await rx.wait_for(lambda r: r.json["event"] == "escalated", within=5)
        assert esc[0].json["alert"]["severity"] == "critical"
        await until(lambda: any(m["event"] == "escalated" for _, m in heard))

        for seq, lel in enumerate((30, 10), start=10):
            await gw.publish(topic, telemetry_payload(seq, [(eng.clock(), {"lel_pct": float(lel)})]), qos=1)
        await rx.wait_for(lambda r: r.json["event"] == "cleared")
        await until(lambda: any(m["event"] == "cleared" for _, m in heard))
        events = [m["event"] for _, m in heard if m["alert"]["rule"] == "gas_lel"]
        assert events[:2] == ["raised", "raised"] and "escalated" in events and events[-1] == "cleared"
        ids = [m["delivery_id"] for _, m in heard]
        assert len(set(ids)) == len(ids)


async def test_overload_goes_to_that_enterprise_only_and_gateway_will_to_safety(
        tmp_path: Path, uid: str, broker: RunningService) -> None:
    reg = safety_registry(uid)
    park, e0, e1 = f"p{uid}", f"e{uid}-0", f"e{uid}-1"
    book = quick_rules(demand_over_capacity={"min_window_s": 0})
    opts = fast(publish_mqtt=True, subscribe=True, client_id=f"alerts-{uid}", group=f"g{uid}", tick_s=0.2)
    async with (
        WebhookReceiver(SECRET) as rx0, WebhookReceiver(SECRET) as rx1,
        listener(broker, uid, f"sp/v1/{park}/+/alerts", f"sp/v1/{park}/safety") as heard,
        AlertEngine(settings_for(tmp_path, broker), reg, book, options=opts, subscribers=[
            subscriber("ent0", rx0.url, enterprises=[e0], categories=["energy"]),
            subscriber("ent1", rx1.url, enterprises=[e1], categories=["energy"])]) as eng,
        aiomqtt.Client(broker.host, broker.port, identifier=f"pub-{uid}") as pub,
    ):
        async with asyncio.timeout(10):
            await eng.wait_connected()
        msg = {"v": 1, "ts": eng.clock(), "park": park, "kpi": {}, "enterprises": {
            e0: {"grid_import_kw": 1500.0}, e1: {"grid_import_kw": 200.0}}}
        await pub.publish(kpi_topic(park), encode(msg), qos=0)
        hit, *_ = await rx0.wait_for(lambda r: r.json["alert"]["rule"] == "demand_over_capacity")
        assert hit.json["alert"]["enterprise"] == e0
        await until(lambda: any(tp.endswith("/alerts") for tp, _ in heard))
        assert {tp for tp, _ in heard} == {f"sp/v1/{park}/{e0}/alerts"}

        # The gateway's last will (retained) raises a safety event on the park's safety topic.
        will = encode({"v": 1, "state": "offline", "ts": 0, "devices": {}})
        await pub.publish(status_topic(park, e0, f"g{uid}-0"), will, qos=1, retain=True)
        await until(lambda: any(m["alert"]["rule"] == "gateway_offline" for _, m in heard))
        gw_topics = {tp for tp, m in heard if m["alert"]["rule"] == "gateway_offline"}
        assert gw_topics == {f"sp/v1/{park}/safety"}
        await pub.publish(status_topic(park, e0, f"g{uid}-0"), b"", qos=1, retain=True)  # clear the retained will
        await eng.dispatch_once(wait=True)
        assert rx1.received == []
