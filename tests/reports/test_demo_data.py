"""The demo's economic figures: written once with `source="demo"`, twelve complete months per enterprise, each
row valid as an import row and consistent with the enterprise's industry and energy use."""

from __future__ import annotations

from pathlib import Path

from parkmodel.registry import load_registry
from reports.demo_data import FULL_LOAD_HOURS, PROFILES, demo_months, seed_demo_economy
from reports.economy import FIGURE_KEYS, validate_rows
from reports.store import EconomyStore, economy_path
from smartpark.config import Settings

NOW_MS = 1_795_824_000_000  # 2026-11-28 08:00 (UTC+8)


def test_demo_economy_written_once_and_plausible(tmp_path: Path) -> None:
    registry = load_registry()
    settings = Settings(var_dir=tmp_path / "var", registry=tmp_path / "registry.yaml")
    enterprises = [e for p in registry.parks for e in p.enterprises]
    assert seed_demo_economy(settings, registry, now_ms=NOW_MS) == 12 * len(enterprises)
    assert seed_demo_economy(settings, registry, now_ms=NOW_MS) == 0  # data present: left alone
    store = EconomyStore(economy_path(settings.var_dir))
    assert demo_months(12, NOW_MS) == [f"2025-{m:02d}" for m in (11, 12)] + [f"2026-{m:02d}" for m in range(1, 11)]
    history = store.history(limit=10_000)
    assert len(history) == 12 * len(enterprises)
    assert {(c.source, c.changed_by, c.action) for c in history} == {("demo", "demo", "create")}

    rows = [["enterprise", "month", *FIGURE_KEYS]] + [
        [s.record.enterprise, s.record.month, *s.record.figures().values()] for s in store.records()]
    assert len(validate_rows(rows, [e.id for e in enterprises])) == 12 * len(enterprises)
    for ent in enterprises:
        recs = [s.record for s in store.records([ent.id])]
        assert [r.month for r in recs] == demo_months(12, NOW_MS)
        annual = sum(r.output_value_10k_yuan for r in recs) * 10_000  # yuan
        kwh = (ent.contracted_capacity_kw or 0) * FULL_LOAD_HOURS
        per_kwh = annual / kwh
        assert 0.4 * PROFILES[ent.industry].yuan_per_kwh < per_kwh < 1.6 * PROFILES[ent.industry].yuan_per_kwh
        for r in recs:
            assert r.land_area_mu == ent.land_area_mu
            assert 0 < r.tax_paid_10k_yuan < r.value_added_10k_yuan < r.output_value_10k_yuan
            assert r.rd_expense_10k_yuan is not None and 0 < r.rd_expense_10k_yuan < r.value_added_10k_yuan
            assert r.employees >= 30
    # Energy-heavy chemicals earn less per kWh than battery makers, so the classes spread.
    assert PROFILES["煤化工"].yuan_per_kwh < PROFILES["动力电池"].yuan_per_kwh
