"""Helpers of the alert tests: a frozen clock, a registry with safety devices, engine settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analytics.alerts.delivery import RetryPolicy
from analytics.alerts.engine import EngineOptions
from analytics.alerts.subscribers import Subscriber
from parkmodel.registry import Registry
from smartpark.config import Settings
from tests.api.conftest import serve  # noqa: F401 - the real-app fixture, shared with the API tests
from tests.conftest import make_registry

SECRET = b"test-secret"
T0 = 1_718_950_000_000  # 2024-06-21 14:06:40 Beijing, a Friday


class Clock:
    """A frozen epoch-ms clock the test moves by hand."""

    def __init__(self, start: int = T0) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> int:
        self.now += int(seconds * 1000)
        return self.now


def safety_registry(uid: str, enterprises: int = 2) -> Registry:
    """Enterprise 0 has a grid meter, a gas detector (poll 1 s) and a fire panel; others have none."""
    return make_registry(uid, [
        {"id": f"m{uid}", "role": "grid_meter", "template": "acrel_dtsd1352"},
        {"id": f"gd{uid}", "role": "gas_detector", "template": "gas_detector", "poll_interval_s": 1.0,
         "location": "罐区"},
        {"id": f"fire{uid}", "role": "fire_panel", "template": "fire_panel", "poll_interval_s": 1.0},
    ], enterprises=enterprises)


def settings_for(tmp_path: Path, broker: Any = None) -> Settings:
    mqtt = {"host": broker.host, "port": broker.port} if broker is not None else {}
    return Settings(var_dir=tmp_path, mqtt=mqtt)


def subscriber(sid: str, url: str, **scope: list[str]) -> Subscriber:
    return Subscriber(id=sid, url=url, secret=SECRET.decode(), scope=scope)


def fast(**kw: Any) -> EngineOptions:
    """Options of a test engine: no MQTT, ticks by hand, quick dispatch and retries."""
    base: dict[str, Any] = {"publish_mqtt": False, "tick_s": 3600, "dispatch_poll_s": 0.05,
                            "retry": RetryPolicy(first_s=0.05, max_s=0.3)}
    return EngineOptions(**(base | kw))
