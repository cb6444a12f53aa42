"""亩均效益 comprehensive evaluation of enterprises and the annual ranking of parks (pure computation).

Each result explains itself: every indicator carries its value (with numerator and denominator), the
benchmark or range it was scored against, its weight and its score; the total, the rank and the class follow.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from reports.config import EnterpriseScheme, Indicator, ParkScheme
from reports.economy import EconomicRecord


@dataclass(frozen=True, slots=True)
class EconomySums:
    """An enterprise's economic figures over a period.

    Attributes:
        months: months reported.
        land_area_mu: the last reported month's land area.
        floor_area_m2: the last reported month's floor area (None if never reported).
        output_value: Σ output value, 10⁴ yuan.
        value_added: Σ value added, 10⁴ yuan.
        tax_paid: Σ tax paid, 10⁴ yuan.
        rd_expense: Σ R&D expense (None if never reported).
        revenue: Σ revenue (None if never reported).
        employees: average over the reported months.
    """

    months: int
    land_area_mu: float
    floor_area_m2: float | None
    output_value: float
    value_added: float
    tax_paid: float
    rd_expense: float | None
    revenue: float | None
    employees: float


def sum_economy(records: Iterable[EconomicRecord]) -> EconomySums | None:
    """Aggregate monthly records of one enterprise (None when there are none)."""
    recs = sorted(records, key=lambda r: r.month)
    if not recs:
        return None

    def total(key: str) -> float | None:
        vals = [getattr(r, key) for r in recs if getattr(r, key) is not None]
        return sum(vals) if vals else None

    floors = [r.floor_area_m2 for r in recs if r.floor_area_m2 is not None]
    return EconomySums(
        months=len(recs), land_area_mu=recs[-1].land_area_mu, floor_area_m2=floors[-1] if floors else None,
        output_value=total("output_value_10k_yuan") or 0.0, value_added=total("value_added_10k_yuan") or 0.0,
        tax_paid=total("tax_paid_10k_yuan") or 0.0, rd_expense=total("rd_expense_10k_yuan"),
        revenue=total("revenue_10k_yuan"), employees=sum(r.employees for r in recs) / len(recs))


@dataclass(frozen=True, slots=True)
class Subject:
    """What is evaluated: an enterprise (or a park) with its economy and measured energy over the period.

    Attributes:
        id: enterprise or park id.
        name: display name.
        group: the comparison group (park id, or "" for the whole registry).
        economy: economic sums (None: no economic data, not evaluated).
        tce_equal_value: measured energy, tce with electricity at 等价值.
        co2_t: measured CO2, t (scope 1 + 2).
        consumed_kwh: electricity consumed.
        extra: park-level inputs (output_progress, new_energy_ratio) as ready values.
    """

    id: str
    name: str
    group: str
    economy: EconomySums | None
    tce_equal_value: float
    co2_t: float
    consumed_kwh: float = 0.0
    extra: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Ratio:
    """An indicator's value as numerator ÷ denominator × scale (None: not computable)."""

    numerator: float | None
    denominator: float | None
    scale: float = 1.0

    @property
    def value(self) -> float | None:
        if self.numerator is None or self.denominator is None or self.denominator <= 0:
            return None
        return self.numerator / self.denominator * self.scale


def indicator_ratio(key: str, s: Subject) -> Ratio:
    """The ratio behind indicator `key` for subject `s`."""
    e = s.economy
    if key in s.extra:
        return Ratio(s.extra[key], 1.0)
    if e is None:
        return Ratio(None, None)
    tce = s.tce_equal_value if s.tce_equal_value > 0 else None
    co2 = s.co2_t if s.co2_t > 0 else None
    rd_base = e.revenue if e.revenue else e.output_value
    table = {
        "tax_per_mu": Ratio(e.tax_paid, e.land_area_mu),
        "value_added_per_mu": Ratio(e.value_added, e.land_area_mu),
        "output_per_mu": Ratio(e.output_value, e.land_area_mu),
        "value_added_per_tce": Ratio(e.value_added, tce),
        "output_per_tce": Ratio(e.output_value, tce),
        "value_added_per_tco2": Ratio(e.value_added, co2),
        "labour_productivity": Ratio(e.value_added, e.employees),
        "rd_intensity": Ratio(e.rd_expense, rd_base, 100.0),
        "tax_per_kwh": Ratio(e.tax_paid * 10_000, s.consumed_kwh if s.consumed_kwh > 0 else None),
    }
    return table[key]


@dataclass(frozen=True, slots=True)
class IndicatorScore:
    """One indicator of one subject, explained.

    Attributes:
        key, name_zh, name_en, unit, weight, source: from the config.
        value: the indicator (None: not computable, scored 0).
        numerator, denominator: what it was computed from.
        reference: the benchmark (benchmark method) or `(min, max)` of the group (normalised method).
        score: points earned.
        note: why a value is missing or how it was scored.
    """

    key: str
    name_zh: str
    name_en: str
    unit: str
    weight: float
    source: str
    value: float | None
    numerator: float | None
    denominator: float | None
    reference: float | tuple[float, float] | None
    score: float
    note: str = ""


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The evaluation of one subject.

    Attributes:
        id, name, group: the subject.
        indicators: each indicator explained.
        total: Σ scores.
        rank: 1 = best in its group (0: not evaluated).
        of: number of subjects ranked in the group.
        klass: class code (A..D; "" when not evaluated or no classes).
        class_zh, class_en: class name.
        note: why the subject was not evaluated.
    """

    id: str
    name: str
    group: str
    indicators: list[IndicatorScore]
    total: float
    rank: int = 0
    of: int = 0
    klass: str = ""
    class_zh: str = ""
    class_en: str = ""
    note: str = ""


def _score(ind: Indicator, value: float | None, method: str, reference: float | tuple[float, float] | None,
           cap: float | None) -> tuple[float, str]:
    if value is None:
        return 0.0, "not computable (missing data): 0 points"
    if method == "benchmark":
        assert isinstance(reference, float)
        if reference <= 0:
            return 0.0, "benchmark is 0: 0 points"
        if ind.direction == "higher":
            s = value / reference * ind.weight
        else:
            s = reference / value * ind.weight if value > 0 else ind.weight * (cap or 1.0)
        if cap is not None and s > cap * ind.weight:
            return cap * ind.weight, f"capped at {cap:g} × weight"
        return s, ""
    assert isinstance(reference, tuple)
    lo, hi = reference
    if hi == lo:
        return float(ind.weight), "all equal: full weight"
    share = (value - lo) / (hi - lo) if ind.direction == "higher" else (hi - value) / (hi - lo)
    return ind.weight * (20 + 80 * share) / 100, ""


def score_group(subjects: Sequence[Subject], indicators: Sequence[Indicator], method: str,
                cap: float | None = None) -> list[Evaluation]:
    """Score subjects of one comparison group and rank them (best first).

    Subjects without economic data (and without park inputs) are listed last, unranked.

    Args:
        subjects: the group.
        indicators: configured indicators.
        method: `benchmark` or `normalised`.
        cap: benchmark method: a score above cap × weight is cut to it.
    """
    ranked = [s for s in subjects if s.economy is not None or s.extra]
    ratios = {(s.id, ind.key): indicator_ratio(ind.key, s) for s in ranked for ind in indicators}
    references: dict[str, float | tuple[float, float] | None] = {}
    for ind in indicators:
        have = [ratios[s.id, ind.key] for s in ranked if ratios[s.id, ind.key].value is not None]
        if method == "benchmark":
            if ind.benchmark is not None:
                references[ind.key] = float(ind.benchmark)
            else:
                num = sum(r.numerator or 0.0 for r in have)
                den = sum(r.denominator or 0.0 for r in have)
                references[ind.key] = num / den * have[0].scale if have and den > 0 else None
        else:
            vals = [r.value for r in have if r.value is not None]
            references[ind.key] = (min(vals), max(vals)) if vals else None
    out: list[Evaluation] = []
    for s in ranked:
        scores = []
        for ind in indicators:
            r = ratios[s.id, ind.key]
            ref = references[ind.key]
            value = r.value
            if ref is None:
                pts, note = 0.0, "no reference in the group: 0 points"
            else:
                pts, note = _score(ind, value, method, ref, cap)
            scores.append(IndicatorScore(ind.key, ind.name_zh, ind.name_en, ind.unit, ind.weight, ind.source, value,
                                         r.numerator, r.denominator, ref, pts, note))
        out.append(Evaluation(s.id, s.name, s.group, scores, sum(x.score for x in scores)))
    out.sort(key=lambda ev: (-round(ev.total, 9), ev.id))
    n = len(out)
    out = [Evaluation(ev.id, ev.name, ev.group, ev.indicators, ev.total, rank=i + 1, of=n)
           for i, ev in enumerate(out)]
    for s in subjects:
        if s.economy is None and not s.extra:
            out.append(Evaluation(s.id, s.name, s.group, [], 0.0, note="no economic data for the period"))
    return out


def evaluate_enterprises(subjects: Sequence[Subject], scheme: EnterpriseScheme) -> dict[str, Evaluation]:
    """亩均效益 evaluation with classes, per comparison group.

    Args:
        subjects: every enterprise (group = park id; the scheme decides whether groups are merged).
        scheme: weights, benchmarks, method and class split.

    Returns:
        Evaluation per enterprise id.
    """
    groups: dict[str, list[Subject]] = {}
    for s in subjects:
        groups.setdefault(s.group if scheme.group == "park" else "", []).append(s)
    out: dict[str, Evaluation] = {}
    for members in groups.values():
        for ev in score_group(members, scheme.indicators, scheme.method, scheme.cap):
            if ev.rank:
                # Mid-rank percentile: the last of 20 is in the bottom 5 %, but the only one of 1 is not
                # (rank / of would put every group's last enterprise in class D, whatever the group size).
                pct = (ev.rank - 0.5) / ev.of * 100
                split = next(c for c in scheme.classes if pct <= c.upto_pct + 1e-9)
                ev = Evaluation(ev.id, ev.name, ev.group, ev.indicators, ev.total, ev.rank, ev.of, split.code,
                                split.name_zh, split.name_en)
            out[ev.id] = ev
    return out


def rank_parks(subjects: Sequence[Subject], scheme: ParkScheme) -> list[Evaluation]:
    """The annual assessment's park ranking (best first; the first `scheme.reward_top` are rewarded)."""
    return score_group(subjects, scheme.indicators, scheme.method)


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)
