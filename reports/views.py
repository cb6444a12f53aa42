"""JSON views of the seed's yardsticks for the API and the dashboard: an enterprise's 亩均效益 evaluation
explained, a park's enterprises ranked with their class, a park's targets as progress, the annual park
assessment. Pure functions of loaded `Inputs`; every figure is the one `reports.build` computes for reports.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from analytics.factors import Factors, default_factors
from parkmodel.registry import Enterprise, Park, Registry
from reports.build import Inputs, evaluate, evaluation_period, load_inputs, park_progress, park_subjects
from reports.config import EvaluationConfig, Indicator, default_evaluation
from reports.energy import carbon_of
from reports.evaluation import EconomySums, Evaluation, IndicatorScore, rank_parks, sum_economy
from reports.periods import BEIJING_OFFSET_MS, Period, parse_period
from reports.store import EconomyStore
from reports.targets import Progress

#: What the dashboard and the API say when no economic data is stored for the period.
IMPORT_HINT = ("an admin imports monthly figures (CSV or Excel, one row per enterprise and month) with "
               "POST /api/v1/economy/import?filename=FILE.xlsx (body = the file); columns: enterprise, month, "
               "land_area_mu, output_value_10k_yuan, value_added_10k_yuan, tax_paid_10k_yuan, employees "
               "(optional floor_area_m2, rd_expense_10k_yuan, revenue_10k_yuan)")


def finite(x: float | None) -> float | None:
    """A JSON-safe number: None for missing or non-finite."""
    return x if x is not None and math.isfinite(x) else None


def default_period(store: EconomyStore, now_ms: int | None = None) -> Period:
    """The 12 months ending with the latest month of economic data (or the last complete month when there is none)."""
    latest = store.latest_month()
    if latest is None:
        now = datetime.fromtimestamp((now_ms if now_ms is not None else time.time() * 1000) / 1000
                                     + BEIJING_OFFSET_MS / 1000, UTC)
        last = now.replace(day=1) - timedelta(days=1)
        latest = f"{last.year:04d}-{last.month:02d}"
    return parse_period(f"{latest}/12m")


def default_year(store: EconomyStore, now_ms: int | None = None) -> int:
    """The year of the latest economic data (or of the last complete month)."""
    return default_period(store, now_ms).year


# ---- pieces ------------------------------------------------------------------------------------------------------
def indicator_json(i: IndicatorScore) -> dict[str, Any]:
    ref = i.reference
    reference: dict[str, float | None] | None
    if isinstance(ref, tuple):
        reference = {"min": finite(ref[0]), "max": finite(ref[1])}
    elif ref is not None:
        reference = {"benchmark": finite(ref)}
    else:
        reference = None
    return {"key": i.key, "name_zh": i.name_zh, "name_en": i.name_en, "unit": i.unit, "weight": i.weight,
            "value": finite(i.value), "numerator": finite(i.numerator), "denominator": finite(i.denominator),
            "reference": reference, "score": finite(i.score), "note": i.note, "source": i.source}


def weight_json(ind: Indicator) -> dict[str, Any]:
    return {"key": ind.key, "name_zh": ind.name_zh, "name_en": ind.name_en, "unit": ind.unit, "weight": ind.weight,
            "direction": ind.direction, "benchmark": ind.benchmark, "source": ind.source}


def economy_json(e: EconomySums | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {"months": e.months, "land_area_mu": e.land_area_mu, "output_value_10k_yuan": e.output_value,
            "value_added_10k_yuan": e.value_added, "tax_paid_10k_yuan": e.tax_paid,
            "rd_expense_10k_yuan": e.rd_expense, "revenue_10k_yuan": e.revenue, "employees": e.employees}


def progress_json(p: Progress) -> dict[str, Any]:
    return {"kind": p.kind, "target_year": p.target_year, "target": finite(p.target), "actual": finite(p.actual),
            "progress": finite(p.ratio), "status": p.status, "area": p.area, "source": p.source,
            "years_left": p.years_left}


def _evaluation_fields(ev: Evaluation | None) -> dict[str, Any]:
    if ev is None or not ev.rank:
        return {"evaluated": False, "total": None, "rank": None, "of": ev.of if ev else 0, "class": None,
                "class_zh": None, "class_en": None, "note": ev.note if ev else "not evaluated"}
    return {"evaluated": True, "total": finite(ev.total), "rank": ev.rank, "of": ev.of, "class": ev.klass or None,
            "class_zh": ev.class_zh or None, "class_en": ev.class_en or None, "note": ev.note}


def _scheme_json(config: EvaluationConfig) -> dict[str, Any]:
    s = config.enterprise
    return {"revision": config.revision, "method": s.method, "method_source": s.method_source, "group": s.group,
            "cap": s.cap, "classes": [{"code": c.code, "name_zh": c.name_zh, "name_en": c.name_en,
                                       "upto_pct": c.upto_pct} for c in s.classes],
            "classes_source": s.classes_source, "weights": [weight_json(i) for i in s.indicators]}


def _has_economy(inp: Inputs, enterprises: list[Enterprise] | None = None) -> bool:
    if enterprises is None:
        return bool(inp.eval_records)
    ids = {e.id for e in enterprises}
    return any(r.enterprise in ids for r in inp.eval_records)


def _common(inp: Inputs) -> dict[str, Any]:
    have = sorted({r.month for r in inp.eval_records})
    return {"period": inp.period.label, "evaluation_period": inp.eval_period.label,
            "months": inp.eval_period.months()[0] + "/" + inp.eval_period.months()[-1],
            "data_months": f"{have[0]}/{have[-1]}" if have else None,
            "energy_source": inp.eval_energy.source, "generated_at": inp.generated_at_ms}


# ---- views -------------------------------------------------------------------------------------------------------
def enterprise_evaluation(inp: Inputs, enterprise_id: str) -> dict[str, Any]:
    """One enterprise's 亩均效益 evaluation explaining itself: each indicator's value, score, weight, then class.

    Raises:
        KeyError: the enterprise is not in the registry.
    """
    found = inp.registry.enterprise(enterprise_id)
    if found is None:
        raise KeyError(f"enterprise {enterprise_id!r} is not in the registry")
    park, ent = found
    ev = evaluate(inp).get(ent.id)
    records = [r for r in inp.eval_records if r.enterprise == ent.id]
    energy = inp.eval_energy.enterprise(ent.id)
    c = carbon_of(energy, inp.factors)
    economic = bool(records)
    return {"enterprise": ent.id, "name": ent.name, "name_en": ent.name_en, "park": park.id,
            "park_name": park.name, "park_name_en": park.name_en, **_common(inp), **_evaluation_fields(ev),
            "economic_data": economic, "hint": "" if economic else IMPORT_HINT,
            "indicators": [indicator_json(i) for i in ev.indicators] if ev is not None else [],
            "economy": economy_json(sum_economy(records)),
            "energy": {"consumed_kwh": energy.get("consumed_kwh"), "tce_equal_value": c.tce_equal_value,
                       "tce_equivalent": c.tce_equivalent, "co2_t": c.co2_t, "days": energy.days},
            "scheme": _scheme_json(inp.config)}


def park_evaluation(inp: Inputs, park_id: str) -> dict[str, Any]:
    """Every enterprise of a park with its total, rank and class, best first (unevaluated ones last).

    Raises:
        KeyError: the park is not in the registry.
    """
    park = inp.registry.park(park_id)
    if park is None:
        raise KeyError(f"park {park_id!r} is not in the registry")
    evaluations = evaluate(inp)
    rows = []
    for ent in park.enterprises:
        ev = evaluations.get(ent.id)
        rows.append((ev.rank if ev is not None and ev.rank else math.inf, ent, ev))
    rows.sort(key=lambda r: (r[0], r[1].id))
    items = []
    for n, (_, ent, ev) in enumerate(rows, start=1):
        fields = _evaluation_fields(ev)
        items.append({"enterprise": ent.id, "name": ent.name, "name_en": ent.name_en, "industry": ent.industry,
                      "land_area_mu": ent.land_area_mu, "park_rank": n if fields["evaluated"] else None, **fields,
                      "indicators": [indicator_json(i) for i in ev.indicators] if ev is not None else []})
    economic = _has_economy(inp, park.enterprises)
    return {"park": park.id, "name": park.name, "name_en": park.name_en, **_common(inp),
            "economic_data": economic, "hint": "" if economic else IMPORT_HINT, "scheme": _scheme_json(inp.config),
            "items": items}


def park_targets(inp: Inputs, park: Park) -> dict[str, Any]:
    """A park's output-value and new-energy targets and green-park status as progress against target and year."""
    output, new_energy, green = park_progress(inp, park)
    economic = _has_economy(inp, park.enterprises)
    return {"park": park.id, "name": park.name, "name_en": park.name_en, **_common(inp), "year": inp.eval_period.year,
            "economic_data": economic, "hint": "" if economic else IMPORT_HINT,
            "output": [progress_json(p) | {"unit": "亿元"} for p in output],
            "new_energy": [progress_json(p) for p in new_energy],
            "green_park": ({**progress_json(green), "green_park": park.green_park} if green is not None else None)}


def assessment(inp: Inputs) -> dict[str, Any]:
    """The annual assessment: parks ranked with the weighting used; the top `reward_top` rewarded."""
    scheme = inp.config.park
    ranking = rank_parks(park_subjects(inp), scheme)
    names = {p.id: p for p in inp.registry.parks}
    items = []
    for ev in ranking:
        park = names[ev.id]
        items.append({"park": ev.id, "name": park.name, "name_en": park.name_en, "rank": ev.rank or None,
                      "of": ev.of, "total": finite(ev.total) if ev.rank else None,
                      "rewarded": bool(ev.rank) and ev.rank <= scheme.reward_top, "note": ev.note,
                      "indicators": [indicator_json(i) for i in ev.indicators]})
    economic = _has_economy(inp)
    return {"year": inp.eval_period.year, **_common(inp), "method": scheme.method, "reward_top": scheme.reward_top,
            "reward_source": scheme.reward_source, "revision": inp.config.revision,
            "weights": [weight_json(i) for i in scheme.indicators], "economic_data": economic,
            "hint": "" if economic else IMPORT_HINT, "items": items}


# ---- loading, cached -----------------------------------------------------------------------------------------------
@dataclass
class InputsCache:
    """Loaded inputs per evaluation period for a short while, so the dashboard's eight target calls read once.

    Entries are keyed by the period, the registry object and the economy store's revision, so an import or an
    edit is seen at once; energy is re-read after `ttl_s`.

    Args:
        ttl_s: how long loaded energy is reused.
    """

    ttl_s: float = 60.0
    _entries: dict[tuple[str, int, int], tuple[float, Inputs]] = field(default_factory=dict)
    _locks: dict[tuple[str, int, int], asyncio.Lock] = field(default_factory=dict)

    async def get(self, key: tuple[str, int, int], load: Callable[[], Any]) -> Inputs:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            hit = self._entries.get(key)
            if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
                return hit[1]
            inputs: Inputs = await load()
            for old in [k for k, (at, _) in self._entries.items() if time.monotonic() - at >= self.ttl_s]:
                self._entries.pop(old, None)
                self._locks.pop(old, None)
            self._entries[key] = (time.monotonic(), inputs)
            return inputs


async def evaluation_inputs(client: httpx.AsyncClient, database: str, registry: Registry, store: EconomyStore,
                            period: Period, *, factors: Factors | None = None, config: EvaluationConfig | None = None,
                            cache: InputsCache | None = None) -> Inputs:
    """Inputs of the evaluation period of `period` (a month becomes the 12 months ending with it): one energy read.

    Raises:
        InfluxError: a query failed.
    """
    eval_period = evaluation_period(period)

    async def load() -> Inputs:
        return await load_inputs(client, database, registry, store, eval_period, factors or default_factors(),
                                 config or default_evaluation())

    if cache is None:
        return await load()
    return await cache.get((eval_period.label, id(registry), store.revision()), load)
