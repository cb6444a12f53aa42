"""Simulated gas detector → real edge agent (Modbus) → broker → alert engine → signed webhook and MQTT."""

from __future__ import annotations

import asyncio
from pathlib import Path

from analytics.alerts.engine import AlertEngine
from deploy.services import RunningService
from deploy.stack import gateway_configs
from edge_agent.agent import EdgeAgent
from edge_agent.config import parse_gateway_config
from simulators.park import SimulatedPark
from tests.alerts.conftest import SECRET, fast, settings_for, subscriber
from tests.alerts.receiver import WebhookReceiver
from tests.conftest import make_registry


async def test_simulated_gas_leak_reaches_the_webhook_through_the_edge_agent(
        tmp_path: Path, uid: str, broker: RunningService) -> None:
    reg = make_registry(uid, [{"id": f"gd{uid}", "role": "gas_detector", "template": "gas_detector",
                               "poll_interval_s": 0.2, "location": "罐区"}])
    settings = settings_for(tmp_path, broker)
    park_id = f"p{uid}"
    opts = fast(publish_mqtt=True, subscribe=True, client_id=f"alerts-{uid}", group=f"g{uid}")
    async with (
        WebhookReceiver(SECRET) as rx,
        AlertEngine(settings, reg, options=opts,
                    subscribers=[subscriber("em", rx.url, parks=[park_id], categories=["safety"])]) as eng,
        SimulatedPark(reg, speed=20, tick_s=0.05) as park,
    ):
        async with asyncio.timeout(10):
            await eng.wait_connected()
        (cfg,) = [parse_gateway_config(c, "test") for c in
                  gateway_configs(reg, settings, park.layout_dict()["devices"], tmp_path)]
        async with EdgeAgent(cfg):
            await asyncio.sleep(0.5)  # normal readings first: nothing raised
            assert not [r for r in rx.received if r.json["alert"]["rule"] == "gas_lel"]
            park.inject(f"gd{uid}", "gas_leak")  # LEL ramps to ~60 % over 30 simulated seconds
            raised = await rx.wait_for(
                lambda r: r.json["alert"]["rule"] == "gas_lel" and r.json["event"] == "raised", n=2, within=15)
            assert [r.json["alert"]["level"] for r in raised[:2]] == [1, 2] and all(r.signed for r in raised)
            assert raised[0].json["alert"]["location"] == "罐区"
            park.inject(f"gd{uid}", "clear")
            await rx.wait_for(lambda r: r.json["alert"]["rule"] == "gas_lel" and r.json["event"] == "cleared",
                              within=15)
