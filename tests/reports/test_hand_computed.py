"""Evaluation, ranking and report numbers against a small park worked out by hand from the published figures.

Coefficients (REFERENCE.md, analytics/data/factors.yaml): electricity 0.1229 kgce/kWh (当量值) and 0.3024 (等价值),
natural gas 1.2143 kgce/m³ and 2.1622 kgCO2/m³, steam 128.6 kgce/t and 413.9 kgCO2/t (placeholder),
Inner Mongolia grid 0.6479 kgCO2/kWh. Weights 30/20/20/10/10/10 (Huangyan/Taizhou), classes A ≤ 25 %, B ≤ 70 %,
C ≤ 95 %, D. Economy and energy of each enterprise: tests/reports/handpark.py.
"""

from __future__ import annotations

import io

import openpyxl
import pytest

from analytics.factors import default_factors
from reports.build import Inputs, enterprise_report, park_report
from reports.config import default_evaluation
from reports.periods import parse_period
from reports.render import render_html, render_xlsx
from tests.reports.handpark import energy, hand_registry, records

# tce at 等价值 (t): consumed × 0.3024 + gas × 1.2143 + steam × 128.6, ÷ 1000
TCE_EQLV = {1: (1_000_000 * 0.3024 + 10_000 * 1.2143) / 1000,  # 314.543
            2: (2_000_000 * 0.3024 + 100 * 128.6) / 1000,  # 617.66
            3: (500_000 * 0.3024 + 5_000 * 1.2143) / 1000,  # 157.2715
            4: 1_500_000 * 0.3024 / 1000,  # 453.6
            5: 600_000 * 0.3024 / 1000}  # 181.44
# CO2 (t): gas × 2.1622 + net purchase × 0.6479 + steam × 413.9, ÷ 1000
CO2 = {1: (10_000 * 2.1622 + 800_000 * 0.6479) / 1000,  # 539.942
       2: (2_000_000 * 0.6479 + 100 * 413.9) / 1000,  # 1337.19
       3: (5_000 * 2.1622 + 500_000 * 0.6479) / 1000,  # 334.761
       4: 1_500_000 * 0.6479 / 1000,  # 971.85
       5: 300_000 * 0.6479 / 1000}  # 194.37
VA = {1: 10_000, 2: 12_000, 3: 2_500, 4: 3_000, 5: 6_000}
# Indicator values per enterprise (tax/mu, VA/mu, VA/tce, VA/tCO2, VA/employee, R&D ÷ revenue (or output) %).
VALUES = {
    1: [2_000 / 100, 10_000 / 100, VA[1] / TCE_EQLV[1], VA[1] / CO2[1], 10_000 / ((180 + 220) / 2), 500 / 40_000 * 100],
    2: [1_500 / 200, 12_000 / 200, VA[2] / TCE_EQLV[2], VA[2] / CO2[2], 12_000 / 400, 300 / 60_000 * 100],
    3: [800 / 50, 2_500 / 50, VA[3] / TCE_EQLV[3], VA[3] / CO2[3], 2_500 / 100, None],
    4: [300 / 150, 3_000 / 150, VA[4] / TCE_EQLV[4], VA[4] / CO2[4], 3_000 / 300, 100 / 20_000 * 100],
    5: [1_200 / 100, 6_000 / 100, VA[5] / TCE_EQLV[5], VA[5] / CO2[5], 6_000 / 150, 600 / 30_000 * 100],
}
# Benchmarks: the group's aggregate Σ numerator ÷ Σ denominator (land 600 mu, 1,150 employees).
BENCH = [5_800 / 600, 33_500 / 600, 33_500 / sum(TCE_EQLV.values()), 33_500 / sum(CO2.values()), 33_500 / 1_150,
         1_500 / 150_000 * 100]
WEIGHTS = [30, 20, 20, 10, 10, 10]
# Σ value ÷ benchmark × weight, worked out to 0.01: e1 178.96, e5 157.64, e3 100.04, e2 89.12, e4 31.73
TOTALS = {1: 178.96, 5: 157.64, 3: 100.04, 2: 89.12, 4: 31.73}
CLASSES = {1: "A", 5: "B", 3: "B", 2: "B", 4: "C"}  # ranks 1..5 of 5 → mid-rank 10, 30, 50, 70, 90 %


@pytest.fixture
def inputs(uid: str) -> Inputs:
    period = parse_period("2026")
    recs = records(uid)
    return Inputs(hand_registry(uid), period, period, energy(uid), energy(uid), recs, recs, default_factors(),
                  default_evaluation(), generated_at_ms=1_780_243_200_000)


def eid(uid: str, n: int) -> str:
    return f"p2{uid}-e{n}" if n == 5 else f"p1{uid}-e{n}"


def test_enterprise_evaluation_matches_the_hand_table(inputs: Inputs, uid: str) -> None:
    for n, values in VALUES.items():
        ev = enterprise_report(inputs, eid(uid, n)).evaluation
        assert ev is not None
        for ind, value, bench, weight in zip(ev.indicators, values, BENCH, WEIGHTS, strict=True):
            assert ind.weight == weight
            assert ind.reference == pytest.approx(bench, rel=1e-9), ind.key
            if value is None:
                assert ind.value is None and ind.score == 0 and "missing" in ind.note
            else:
                assert ind.value == pytest.approx(value, rel=1e-9), ind.key
                assert ind.score == pytest.approx(value / bench * weight, rel=1e-9), ind.key
        assert round(ev.total, 2) == TOTALS[n]
        assert (ev.klass, ev.of) == (CLASSES[n], 5)
    ranks = {n: enterprise_report(inputs, eid(uid, n)).evaluation.rank for n in VALUES}  # type: ignore[union-attr]
    assert ranks == {1: 1, 5: 2, 3: 3, 2: 4, 4: 5}


def test_enterprise_report_numbers(inputs: Inputs, uid: str) -> None:
    r = enterprise_report(inputs, eid(uid, 1))
    c = r.energy.carbon
    assert c.tce_equivalent == pytest.approx((1_000_000 * 0.1229 + 10_000 * 1.2143) / 1000)  # 135.043
    assert c.tce_equal_value == pytest.approx(314.543)
    assert (c.scope1_t, c.scope2_t, c.co2_t) == pytest.approx((21.622, 518.32, 539.942))
    assert r.energy.ratio == pytest.approx(0.2)
    elec = r.energy.carriers[0]
    assert (elec.quantity, elec.tce_equivalent, elec.tce_equal_value) == pytest.approx((1_000_000, 122.9, 302.4))
    assert r.per_mu["output"] == pytest.approx(500) and r.per_mu["tax"] == pytest.approx(20)
    assert r.per_mu["tce"] == pytest.approx(1.35043) and r.per_mu["co2"] == pytest.approx(5.39942)
    assert r.economy is not None and r.economy.employees == 200 and r.economy.months == 2
    assert [m.device for m in r.meters] == [f"p1{uid}-m1", f"p1{uid}-gas1"]
    assert r.meters[0].quantities["import_kwh"] == 800_000 and r.meters[1].days == 0
    # The same numbers, to the unit, in what is signed.
    html = render_html(r)
    for text in ("135.043", "314.543", "539.942", "1,000,000.0", "20.0 %", "178.96", "优先发展", "1 / 5"):
        assert text in html, text
    book = openpyxl.load_workbook(io.BytesIO(render_xlsx(r, "en")))
    summary = {row[0]: row[1] for row in book["summary"].iter_rows(values_only=True)}
    assert summary["CO2 t"] == pytest.approx(539.942) and summary["Class"] == "A"
    rows = list(book["evaluation"].iter_rows(values_only=True))
    assert rows[1][0] == "tax_per_mu" and rows[1][3] == pytest.approx(20) and rows[1][8] == pytest.approx(
        20 / (5_800 / 600) * 30)


def test_park_targets_and_ranking(inputs: Inputs, uid: str) -> None:
    r = park_report(inputs, f"p1{uid}")
    assert [(p.target_year, p.actual, p.status) for p in r.output] == [(2025, 14.0, "achieved"), (2026, 14.0, "behind")]
    assert r.output[1].ratio == pytest.approx(0.7)
    # 零碳区 is e1 alone: 200,000 ÷ 1,000,000; the 2027 target is the whole park's 200,000 ÷ 5,000,000.
    assert [(p.area, p.actual, p.status) for p in r.new_energy] == [("零碳区", pytest.approx(0.2), "behind"),
                                                                    ("", pytest.approx(0.04), "on_track")]
    assert r.green_park is not None and (r.green_park.status, r.green_park.years_left) == ("on_track", 1)
    assert r.energy.carbon.tce_equivalent == pytest.approx((5_000_000 * 0.1229 + 15_000 * 1.2143 + 100 * 128.6) / 1000)
    # Normalised over p1 and p2, weight × [20 + 80 × share] ÷ 100: each indicator is either the min (20 %) or the max.
    # p1: output 14/20 = 70 % (max), per mu 280 vs 300, tax 9.2 vs 12, VA/tce 17.82 vs 33.07, ratio 4 % vs 50 %.
    ranking = {ev.id: ev for ev in r.ranking}
    p1, p2, p3 = ranking[f"p1{uid}"], ranking[f"p2{uid}"], ranking[f"p3{uid}"]
    assert [i.value for i in p1.indicators] == pytest.approx([70, 280, 9.2, 27_500 / 1543.0745, 4])
    assert p1.total == pytest.approx(30 + 4 + 4 + 3 + 3) and p2.total == pytest.approx(6 + 20 + 20 + 15 + 15)
    assert (p2.rank, p1.rank, p3.rank) == (1, 2, 0) and "no economic data" in p3.note
    assert r.reward_top == 2
    html = render_html(r, "en")
    assert "Annual park assessment ranking" in html and "70.0 %" in html and "behind" not in html.split("<body>")[0]
