"""The evaluation, targets and assessment routes against the real app, broker and influxd: figures cross-checked
with reports' own functions and the hand table of tests/reports/handpark.py, scoping (404 / 403), bad input 4xx.
Then the dashboard in a real headless Chromium with the demo's economic data: the targets & assessment view, a
park's per-mu table, an enterprise's evaluation and report downloads. Screenshots land in the test's tmp_path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from parkmodel.registry import Registry
from reports.demo_data import seed_demo_economy
from reports.periods import month_start_ms, parse_period
from reports.store import EconomyStore, economy_path
from reports.views import assessment, enterprise_evaluation, evaluation_inputs, park_evaluation, park_targets
from tests.api.conftest import ServeFactory, api_settings
from tests.api.test_dashboard_browser import CHROMEDRIVER, CHROMIUM, browser, eight_parks, eventually, in_thread, login
from tests.reports.handpark import energy, hand_registry, records

__all__ = ["browser"]  # the Chromium fixture, shared with the live dashboard test
needs_chromium = pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                                    reason="needs Debian's chromium and chromium-driver")
FIELDS = ("consumed_kwh", "net_purchase_kwh", "renewable_consumed_kwh", "grid_import_kwh", "green_supply_kwh",
          "gas_m3", "steam_t", "coverage")


def write_energy_rows(influx_url: str, db: str, uid: str) -> None:
    """The hand table's energy as analytics' daily `energy` rows (one day, 2026-06-01)."""
    pe = energy(uid)
    lines = []
    for scope, groups in (("enterprise", pe.enterprises), ("park", pe.parks)):
        for ident, totals in groups.items():
            park = ident if scope == "park" else ident.split("-")[0]
            tags = f"scope={scope},park={park}" + (f",enterprise={ident}" if scope == "enterprise" else "")
            fields = ",".join(f"{k}={float(totals.values.get(k, 1.0 if k == 'coverage' else 0.0))}" for k in FIELDS)
            lines.append(f"energy,{tags},window=day {fields} 1780243200000")
    r = httpx.post(f"{influx_url}/write", params={"db": db, "precision": "ms"}, content="\n".join(lines))
    assert r.status_code == 204, r.text


def without_time(body: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in body.items() if k != "generated_at"}


async def test_evaluation_targets_assessment_match_reports(serve: ServeFactory, influx_url: str, influx_db: str,
                                                           uid: str, tmp_path: Path) -> None:
    registry = hand_registry(uid)
    p1, p2, p3 = f"p1{uid}", f"p2{uid}", f"p3{uid}"
    write_energy_rows(influx_url, influx_db, uid)
    store = EconomyStore(economy_path(tmp_path / "var"))
    store.put_many(records(uid), "tester", "test")
    async with httpx.AsyncClient(base_url=influx_url, timeout=30) as client:
        inp = await evaluation_inputs(client, influx_db, registry, store, parse_period("2026-06"))
        year = await evaluation_inputs(client, influx_db, registry, store, parse_period("2026"))
    assert inp.eval_energy.source == "stored"

    async with serve(registry) as api, api.client("operations", prefix="/api/v1") as ops:
        r = await ops.get(f"/enterprises/{p1}-e3/evaluation", params={"period": "2026-06"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert without_time(body) == without_time(enterprise_evaluation(inp, f"{p1}-e3"))
        assert body["evaluation_period"] == "2026-06/12m" and body["economic_data"] is True
        ind = {i["key"]: i for i in body["indicators"]}
        assert (ind["tax_per_mu"]["numerator"], ind["tax_per_mu"]["denominator"]) == (800, 50)
        assert ind["tax_per_mu"]["value"] == pytest.approx(16.0)
        assert ind["tax_per_mu"]["weight"] == 30
        assert sum(i["weight"] for i in body["indicators"]) == 100
        assert sum(i["score"] for i in body["indicators"]) == pytest.approx(body["total"])
        assert body["class"] in {"A", "B", "C", "D"} and body["rank"] >= 1 and body["of"] == 5

        # Default period: the 12 months ending with the latest economic month (2026-06).
        default = (await ops.get(f"/enterprises/{p1}-e3/evaluation")).json()
        assert default["evaluation_period"] == "2026-06/12m" and default["total"] == body["total"]

        park = (await ops.get(f"/parks/{p1}/evaluation", params={"period": "2026-06"})).json()
        assert without_time(park) == without_time(park_evaluation(inp, p1))
        assert [i["park_rank"] for i in park["items"]] == [1, 2, 3, 4]
        assert [i["total"] for i in park["items"]] == sorted((i["total"] for i in park["items"]), reverse=True)
        assert all(i["class"] in {"A", "B", "C", "D"} for i in park["items"])

        targets = (await ops.get(f"/parks/{p1}/targets", params={"period": "2026-06"})).json()
        assert without_time(targets) == without_time(park_targets(inp, registry.park(p1)))  # type: ignore[arg-type]
        out = {t["target_year"]: t for t in targets["output"]}
        # Output over the 12 months: 20,000 + 30,000 + 60,000 + 10,000 + 20,000 (10⁴ yuan) = 14 (10⁸ yuan).
        assert out[2025]["actual"] == pytest.approx(14.0) and out[2025]["status"] == "achieved"
        assert out[2026]["progress"] == pytest.approx(0.7) and out[2026]["status"] == "behind"
        ne = {t["target_year"]: t for t in targets["new_energy"]}
        assert ne[2026]["actual"] == pytest.approx(0.2) and ne[2026]["area"] == "零碳区"
        assert ne[2027]["actual"] == pytest.approx(0.04) and ne[2027]["status"] == "on_track"
        assert targets["green_park"]["target_year"] == 2027 and targets["green_park"]["status"] == "on_track"

        a = (await ops.get("/assessment", params={"year": 2026})).json()
        assert without_time(a) == without_time(assessment(year))
        assert sum(w["weight"] for w in a["weights"]) == 100 and a["reward_top"] == 2
        ranked = [i for i in a["items"] if i["rank"]]
        assert [i["park"] for i in ranked] in ([p1, p2], [p2, p1])
        assert all(i["rewarded"] for i in ranked)
        assert next(i for i in a["items"] if i["park"] == p3)["rewarded"] is False

        # No economic data for the period: a clear flag and the hint on how to import.
        empty = (await ops.get(f"/enterprises/{p1}-e3/evaluation", params={"period": "2020"})).json()
        assert empty["economic_data"] is False and empty["evaluated"] is False and "economy/import" in empty["hint"]
        assert (await ops.get(f"/parks/{p3}/targets")).json()["output"][0]["status"] == "no_data"

        # Bad parameters are the caller's fault, never a server error.
        for path, params in ((f"/parks/{p1}/evaluation", {"period": "2026-13"}),
                             (f"/enterprises/{p1}-e1/evaluation", {"period": "x" * 40}),
                             ("/assessment", {"year": 1999}), ("/assessment", {"year": "soon"})):
            assert (await ops.get(path, params=params)).status_code == 422, (path, params)
        assert (await ops.get("/parks/nope/targets")).status_code == 404
        assert (await ops.get("/enterprises/Bad%20Id/evaluation")).status_code == 422

    async with serve(registry) as api:
        async with api.client("enterprise", f"{p1}-e1", prefix="/api/v1") as ent:
            own = await ent.get(f"/enterprises/{p1}-e1/evaluation", params={"period": "2026-06"})
            assert own.status_code == 200 and own.json()["enterprise"] == f"{p1}-e1"
            assert (await ent.get(f"/enterprises/{p1}-e2/evaluation")).status_code == 404
            assert (await ent.get(f"/enterprises/{p2}-e5/evaluation")).status_code == 404
            for path in (f"/parks/{p1}/evaluation", f"/parks/{p1}/targets", "/assessment"):
                assert (await ent.get(path)).status_code == 403, path
        async with api.client("emergency", prefix="/api/v1") as emg:
            assert (await emg.get(f"/enterprises/{p1}-e1/evaluation")).status_code == 403
            assert (await emg.get("/assessment")).status_code == 403
        async with httpx.AsyncClient(base_url=api.url) as anonymous:
            assert (await anonymous.get(f"/api/v1/parks/{p1}/targets")).status_code == 401


def write_energy(influx_url: str, db: str, registry: Registry, months: list[str]) -> None:
    """One daily `energy` row per enterprise and park on the 15th of each month (analytics' layout), with the
    zero-carbon and low-carbon areas' enterprises taking a large share of renewable power."""
    lines = []
    for month in months:
        ts = month_start_ms(int(month[:4]), int(month[5:])) + 14 * 86_400_000
        for park in registry.parks:
            total = {"consumed_kwh": 0.0, "renewable_consumed_kwh": 0.0, "gas_m3": 0.0}
            for ent in park.enterprises:
                consumed = (ent.contracted_capacity_kw or 1000) * 24 * 0.6
                share = 0.85 if ent.area else 0.12
                fields = {"consumed_kwh": consumed, "renewable_consumed_kwh": consumed * share,
                          "gas_m3": ent.land_area_mu * 4}
                lines.append(f"energy,scope=enterprise,park={park.id},enterprise={ent.id},window=day "
                             + ",".join(f"{k}={v}" for k, v in fields.items()) + f",coverage=1.0 {ts}")
                total = {k: total[k] + fields[k] for k in total}
            if park.enterprises:
                lines.append(f"energy,scope=park,park={park.id},window=day "
                             + ",".join(f"{k}={v}" for k, v in total.items()) + f",coverage=1.0 {ts}")
    r = httpx.post(f"{influx_url}/write", params={"db": db, "precision": "ms"}, content="\n".join(lines))
    assert r.status_code == 204, r.text


async def js(browser: Any, script: str) -> Any:
    return await in_thread(browser.execute_script, script)


async def shot(browser: Any, path: Path) -> None:
    assert await in_thread(browser.save_screenshot, str(path))


@needs_chromium
async def test_targets_assessment_per_mu_and_enterprise_reports(serve: ServeFactory, influx_url: str, influx_db: str,
                                                                browser: Any, uid: str, tmp_path: Path) -> None:
    registry = eight_parks(uid)
    mengsu = f"mengsu-{uid}"
    async with serve(registry) as api:
        api.store.create_user("ops", "ops-password", "operations")
        api.store.create_user("battery", "battery-password", "enterprise", "zc-battery")
        await login(browser, api.url, "ops", "ops-password")

        # Before any import: the view says so and how to import.
        await js(browser, "location.hash = '#/targets'")
        note = await eventually(browser, "const n = document.getElementById('targets-empty');"
                                         "return n.hidden ? '' : n.textContent", bool, "no-economy message")
        assert "尚未导入经济数据" in note and "economy/import" in note
        await shot(browser, tmp_path / "targets-empty-zh.png")

        written = seed_demo_economy(api_settings("127.0.0.1", 1, influx_url, influx_db, tmp_path / "var"), registry)
        assert written == 12 * 12
        store = EconomyStore(economy_path(tmp_path / "var"))
        months = sorted({r.record.month for r in store.records()})
        write_energy(influx_url, influx_db, registry, months)

        await js(browser, "location.hash = '#/overview'")
        await js(browser, "location.hash = '#/targets'")
        await eventually(browser, "return document.querySelectorAll('#assess-body tr.rewarded').length",
                         lambda n: n == 2, "the assessment ranked, two parks rewarded")
        assert await js(browser, "return document.querySelectorAll('#assess-body tr').length") == 8
        await eventually(browser, "return document.querySelectorAll('.target-card .progress-row').length",
                         lambda n: n >= 16, "output and new-energy progress bars")
        assert await js(browser, "return document.getElementById('targets-empty').hidden") is True
        rewarded = await js(browser, "return [...document.querySelectorAll('#assess-body tr.rewarded')]"
                                     ".map(r => r.dataset.rank)")
        assert rewarded == ["1", "2"]
        head = await js(browser, "return document.getElementById('assess-head').textContent")
        assert "产值目标完成率" in head and "权重 30" in head
        card = await js(browser, f"return document.querySelector('.target-card[data-park=\"{mengsu}\"]').textContent")
        assert "2025 年目标" in card and "新能源消纳比例" in card and "鄂尔多斯零碳产业园" in card and "亿元" in card
        sulige = await js(browser, f"return document.querySelector('.target-card[data-park=\"sulige-{uid}\"]')"
                                   ".textContent")
        assert "绿色园区" in sulige and "目标 2025 年" in sulige
        await shot(browser, tmp_path / "targets-zh.png")

        await js(browser, "document.getElementById('lang-toggle').click()")
        await eventually(browser, "return document.documentElement.lang", lambda s: s == "en", "English")
        head = await js(browser, "return document.getElementById('assess-head').textContent")
        assert "Output vs target" in head and "Weight 30" in head
        assert "Rewarded" in await js(browser, "return document.querySelector('#assess-body tr.rewarded').textContent")
        await shot(browser, tmp_path / "targets-en.png")
        await js(browser, "document.getElementById('lang-toggle').click()")  # back to 中文

        # A park's per-mu table: its four enterprises, ranked, with class and score.
        await js(browser, f"location.hash = '#/park/{mengsu}'")
        await eventually(browser, "return document.querySelectorAll('#park-eval tr[data-class]').length",
                         lambda n: n == 4, "four enterprises in the per-mu table")
        classes = await js(browser, "return [...document.querySelectorAll('#park-eval tr')].map(r => r.dataset.class)")
        assert all(c in {"A", "B", "C", "D"} for c in classes)
        async with api.client(prefix="/api/v1") as ops:
            expected = (await ops.get(f"/parks/{mengsu}/evaluation")).json()
        first = await js(browser, "return document.querySelector('#park-eval tr').dataset.enterprise")
        assert first == expected["items"][0]["enterprise"]
        await js(browser, "document.getElementById('park-eval-panel').scrollIntoView()")
        await shot(browser, tmp_path / "park-per-mu-zh.png")

        # The enterprise user: its own evaluation and its reports, nothing else.
        await js(browser, "document.getElementById('logout').click()")
        await login(browser, api.url, "battery", "battery-password")
        await eventually(browser, "return document.querySelectorAll('#ent-eval tr[data-indicator]').length",
                         lambda n: n == 6, "six indicators of the evaluation")
        async with api.client("enterprise", "zc-battery", prefix="/api/v1") as ent:
            own = (await ent.get("/enterprises/zc-battery/evaluation")).json()
        assert await js(browser, "return document.getElementById('ent-eval-class').textContent") == own["class"]
        assert await js(browser, "return document.querySelector('[data-nav=targets]').offsetParent") is None
        await js(browser, "document.getElementById('ent-reports-panel').scrollIntoView()")
        await shot(browser, tmp_path / "enterprise-evaluation-zh.png")
        assert await js(browser, "return document.getElementById('report-period').value") == months[-1]
        for fmt, media in (("xlsx", "application/vnd.openxmlformats"), ("pdf", "application/pdf")):
            await js(browser, "delete document.body.dataset.lastReport;"
                              f"document.getElementById('report-{fmt}').click()")
            raw = await eventually(browser, "return document.body.dataset.lastReport", bool, f"{fmt} fetched")
            done = json.loads(raw)
            assert done["status"] == 200 and done["type"].startswith(media) and done["bytes"] > 2000, done
            assert f"format={fmt}" in done["path"] and "zc-battery" in done["path"]
        status = await js(browser, "return document.getElementById('report-status').textContent")
        assert status.startswith("已生成 enterprise-zc-battery-")
        token = json.loads(await js(browser, "return sessionStorage.getItem('sp-session')"))["token"]
        async with httpx.AsyncClient(base_url=f"{api.url}/api/v1/reports/enterprise", timeout=60,
                                     headers={"Authorization": f"Bearer {token}"}) as session:
            pdf = await session.get("/zc-battery", params={"period": months[-1], "format": "pdf"})
            assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
            assert pdf.headers["content-disposition"].startswith("attachment")
            html = await session.get("/zc-battery", params={"period": months[-1][:4], "format": "html"})
            assert html.status_code == 200 and "零碳园动力电池有限公司" in html.text
            assert (await session.get("/zc-pvglass", params={"period": months[-1]})).status_code == 404
        # Another enterprise's page sends this user back to its own.
        await js(browser, "location.hash = '#/enterprise/zc-pvglass'")
        await eventually(browser, "return location.hash", lambda h: h == "#/enterprise/zc-battery", "back home")
