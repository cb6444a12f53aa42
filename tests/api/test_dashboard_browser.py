"""The dashboard in a real headless Chromium: park cards fed live by MQTT → WebSocket, language switch,
connection indicator. Screenshots land in the test's tmp_path."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
import orjson
import pytest

from deploy.services import RunningService
from parkmodel.registry import Registry, load_registry, parse_registry
from parkmodel.topics import kpi_topic
from tests.api.conftest import ServeFactory, wait_connected

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
T = TypeVar("T")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
)
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")


def eight_parks(uid: str) -> Registry:
    """The real registry's eight parks (names, targets, enterprises) under ids unique to this test."""
    data = load_registry().model_dump(mode="json")
    for park in data["parks"]:
        park["id"] = f"{park['id']}-{uid}"
    return parse_registry(data)


@pytest.fixture
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1920,1080", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    # Selenium blocks; the served app runs on this event loop, so the browser is driven from a worker thread.
    return await asyncio.to_thread(fn, *args)


async def eventually(browser: Any, script: str, expected: Callable[[Any], bool], what: str) -> Any:
    value = None
    for _ in range(100):
        value = await in_thread(browser.execute_script, script)
        if expected(value):
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: last value {value!r}")


def kpi(park: str, ts: int, load_kw: float, gen_kw: float, ratio: float) -> bytes:
    return orjson.dumps({"v": 1, "ts": ts, "park": park, "enterprises": {}, "kpi": {
        "load_kw": load_kw, "generation_kw": gen_kw, "grid_import_kw": max(0.0, load_kw - gen_kw),
        "grid_export_kw": max(0.0, gen_kw - load_kw), "new_energy_ratio_today": ratio,
        "consumed_today_kwh": load_kw * 9.5}})


def text_of(park: str, key: str) -> str:
    return f"return document.querySelector('#park-{park} [data-kpi={key}]')?.textContent"


async def login(browser: Any, url: str, username: str, password: str) -> None:
    """Sign in through the login form, as a person would."""
    await in_thread(browser.get, url + "/")
    await eventually(browser, "return !document.getElementById('view-login').hidden", bool, "login screen shown")
    await in_thread(browser.execute_script, f"""
        document.getElementById('login-user').value = {username!r};
        document.getElementById('login-pass').value = {password!r};
        document.getElementById('login-submit').click();""")
    await eventually(browser, "return document.getElementById('view-login').hidden", bool, f"{username} signed in")


async def test_dashboard_shows_live_kpis_and_switches_language(
    serve: ServeFactory, broker: RunningService, browser: Any, uid: str, tmp_path: Path
) -> None:
    registry = eight_parks(uid)
    zero_carbon, otog = f"mengsu-{uid}", f"otog-{uid}"
    async with serve(registry) as api:
        await wait_connected(api)
        api.store.create_user("ops", "ops-password", "operations")
        await login(browser, api.url, "ops", "ops-password")
        await eventually(browser, "return document.querySelectorAll('.card').length", lambda n: n == 8, "8 cards")
        await eventually(browser, "return document.getElementById('conn-status').dataset.state",
                         lambda s: s == "live", "connection indicator live")

        now = int(time.time() * 1000)
        async with aiomqtt.Client(broker.host, broker.port) as client:
            for i in range(40):  # five minutes of frames, so the chart has a curve
                ts = now - (39 - i) * 7500
                await client.publish(kpi_topic(zero_carbon), kpi(zero_carbon, ts, 42_000 + 3000 * ((i + 3) % 7),
                                                                 18_000 + 400 * i, 0.62), qos=1)
                await client.publish(kpi_topic(otog), kpi(otog, ts, 860.0 + i, 120.0, 0.31), qos=1)
        await eventually(browser, text_of(zero_carbon, "load_kw"), lambda s: s == "42.00 MW", "live load shown")
        await eventually(browser, text_of(otog, "load_kw"), lambda s: s == "899.0 kW", "second park's load")
        await in_thread(browser.execute_script, f"document.getElementById('park-{zero_carbon}').click()")
        assert await in_thread(browser.execute_script, text_of(zero_carbon, "new_energy_ratio_today")) == "62.0%"
        target = await in_thread(browser.execute_script,
                                 f"return document.querySelector('#park-{zero_carbon} .target').textContent")
        assert "80%" in target and "鄂尔多斯零碳产业园" in target and "2025" in target
        no_target = await in_thread(browser.execute_script,
                                    f"return document.querySelector('#park-jungar-{uid} .target').textContent")
        assert no_target == ""
        label = "return document.querySelector('.card [data-i18n=load]').textContent"
        assert await in_thread(browser.execute_script, label) == "负荷"
        await asyncio.sleep(0.5)  # let the chart draw
        await in_thread(browser.save_screenshot, str(tmp_path / "dashboard-zh.png"))
        for width, height in ((3840, 2160), (1366, 768)):  # a 4K wall and a laptop
            await in_thread(browser.set_window_size, width, height)
            await asyncio.sleep(0.4)
            await in_thread(browser.save_screenshot, str(tmp_path / f"dashboard-zh-{width}.png"))
        await in_thread(browser.set_window_size, 1920, 1080)

        await in_thread(browser.execute_script, "document.getElementById('lang-toggle').click()")
        await eventually(browser, "return document.documentElement.lang", lambda s: s == "en", "English")
        assert await in_thread(browser.execute_script, label) == "Load"
        name = await in_thread(browser.execute_script,
                               f"return document.querySelector('#park-{zero_carbon} .park-name').textContent")
        assert name == "Mengsu Economic Development Zone"
        assert await in_thread(browser.execute_script, text_of(zero_carbon, "load_kw")) == "42.00 MW"
        await asyncio.sleep(0.3)
        await in_thread(browser.save_screenshot, str(tmp_path / "dashboard-en.png"))
        await in_thread(browser.execute_script, "document.getElementById('lang-toggle').click()")  # back to 中文

    # The server is gone: the indicator says so (and keeps retrying by itself).
    await eventually(browser, "return document.getElementById('conn-status').dataset.state",
                     lambda s: s in ("lost", "connecting"), "connection indicator shows the loss")
    await in_thread(browser.save_screenshot, str(tmp_path / "dashboard-lost.png"))
    assert (tmp_path / "dashboard-zh.png").stat().st_size > 10_000
