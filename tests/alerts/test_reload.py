"""The alert engine follows the registry file and the per-park rules folder without a restart (issues 4, 5)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analytics.alerts.engine import AlertEngine
from analytics.alerts.rule_files import RuleFiles
from analytics.alerts.store import AlertFilter
from parkmodel.registry import Registry
from tests.alerts.conftest import Clock, fast, safety_registry, settings_for
from tests.analytics.test_reload import dump, write_atomic
from tests.conftest import make_registry

LOWER_LEL = {"version": 1, "rules": [{"id": "gas_lel", "clear": 10, "levels": [
    {"raise": 15, "severity": "warning"}, {"raise": 50, "severity": "critical"}]}]}


async def until(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    """Poll what another task changes (the watch, the engine) until `condition` holds."""
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110 - the state belongs to the service under test
            await asyncio.sleep(0.05)


def relocated(registry: Registry, location: str, capacity: float) -> dict[str, Any]:
    data = dump(registry)
    ent = data["parks"][0]["enterprises"][0]
    ent["contracted_capacity_kw"] = capacity
    for dev in ent["gateways"][0]["devices"]:
        if dev["id"].startswith("gd"):
            dev["location"] = location
    return data


async def test_registry_changes_reach_the_engine(tmp_path: Path, uid: str) -> None:
    clock, path = Clock(), tmp_path / "registry.yaml"
    park, gd = f"p{uid}", f"gd{uid}"
    before = make_registry(uid, [{"id": f"m{uid}", "role": "grid_meter", "template": "acrel_dtsd1352"}])
    write_atomic(path, dump(before))
    options = fast(registry_path=path, watch_s=0.05)
    async with AlertEngine(settings_for(tmp_path), before, options=options, clock=clock) as eng:
        assert eng.store is not None
        await eng.observe(gd, clock.advance(1), {"lel_pct": 30})
        assert eng.store.list(AlertFilter(park=park))[1] == 0  # not in the registry: ignored

        # The detector is added: its readings raise alerts, with the location the registry gives it.
        write_atomic(path, dump(safety_registry(uid)))
        await until(lambda: eng.registry.device(gd) is not None)
        await eng.observe(gd, clock.advance(1), {"lel_pct": 30})
        items, total = eng.store.list(AlertFilter(park=park))
        assert total == 1 and items[0]["location"] == "罐区" and items[0]["rule"] == "gas_lel"

        # Location and contracted capacity edited: the next alert's text and the demand rule use them.
        write_atomic(path, relocated(eng.registry, "新罐区", 100.0))
        await until(lambda: (ent := eng.registry.enterprise(f"e{uid}-0")) is not None
                    and ent[1].contracted_capacity_kw == 100.0)
        await eng.observe(gd, clock.advance(1), {"h2s_ppm": 8.0})
        h2s = next(a for a in eng.store.list(AlertFilter(park=park))[0] if a["rule"] == "gas_h2s")
        assert h2s["location"] == "新罐区"
        for _ in range(400):  # 400 s of 150 kW import: 150 % of the new 100 kW contracted capacity
            await eng.observe_kpis({"park": park, "ts": clock.advance(1), "kpi": {},
                                    "enterprises": {f"e{uid}-0": {"grid_import_kw": 150.0}}})
        demand = [a for a in eng.store.list(AlertFilter(park=park))[0] if a["rule"].startswith("demand")]
        assert demand and demand[0]["limit"] <= 100.0

        # The detector is removed: its open alerts are cleared, its readings ignored again.
        write_atomic(path, dump(before))
        await until(lambda: eng.registry.device(gd) is None)
        states = {a["rule"]: a["state"] for a in eng.store.list(AlertFilter(park=park))[0] if a["device"] == gd}
        assert states == {"gas_lel": "cleared", "gas_h2s": "cleared"}
        await eng.observe(gd, clock.advance(1), {"lel_pct": 60})
        assert eng.store.list(AlertFilter(park=park, state="raised"))[1] == len(demand)


async def test_rules_folder_changes_reach_the_engine_and_bad_files_are_ignored(
    tmp_path: Path, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock, rules_dir = Clock(), tmp_path / "rules"
    park, gd = f"p{uid}", f"gd{uid}"
    registry = safety_registry(uid)
    options = fast(rules_dir=rules_dir, watch_s=0.05)
    async with AlertEngine(settings_for(tmp_path), registry, options=options, clock=clock) as eng:
        assert eng.store is not None
        await eng.observe(gd, clock.advance(1), {"lel_pct": 20})
        assert eng.store.list(AlertFilter(park=park))[1] == 0

        entry = await asyncio.to_thread(RuleFiles(rules_dir).put, registry, park, LOWER_LEL, "tester")
        assert entry.revision == 1 and entry.changed == ("gas_lel",)
        await until(lambda: eng.rules.get(park, "gas_lel").levels[0].raise_at == 15)
        await eng.observe(gd, clock.advance(1), {"lel_pct": 20})
        items, _ = eng.store.list(AlertFilter(park=park))
        assert [(a["rule"], a["limit"], a["state"]) for a in items] == [("gas_lel", 15.0, "raised")]

        # A hand-edited file that does not validate: logged with the file and the key, the rules stay.
        with caplog.at_level(logging.ERROR, logger="parkmodel.watch"):
            (rules_dir / f"{park}.yaml").write_text(
                "version: 1\nrules:\n  - {id: gas_lel, clear: 30}\n", encoding="utf-8")
            await until(lambda: "alerts-rules-watch" in caplog.text)
        assert f"{park}.yaml" in caplog.text and "rules[gas_lel]" in caplog.text
        assert eng.rules.get(park, "gas_lel").levels[0].raise_at == 15

        # Back to the defaults when the override goes.
        (rules_dir / f"{park}.yaml").unlink()
        await until(lambda: eng.rules.get(park, "gas_lel").levels[0].raise_at == 25)
