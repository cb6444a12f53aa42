"""Reports (PDF, Excel, HTML) and enterprise economic data (read by the enterprise itself, edited by admins).

Scoping is `api.deps`': an enterprise caller gets its own reports and figures only (another enterprise's
answers 404), park reports are for the operations center and admins, economic data is edited by admins and
every change lands in the append-only history.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from api.deps import AdminDep, CallerDep, EnterpriseKpiDep, IdPath, InfluxDep, ParkKpiDep, RegistryDep
from api.economy import EconomySnapshot
from api.errors import ApiError, ErrorCode, invalid
from reports.build import Inputs
from reports.economy import FIGURE_KEYS, EconomicRecord, ImportProblems, load_records, validate_rows
from reports.periods import Period, PeriodError, parse_period
from reports.render import MEDIA_TYPES, RenderError, render
from reports.service import build_report
from reports.store import EconomyStore, NotFound, VersionConflict
from reports.views import (
    assessment,
    default_period,
    default_year,
    enterprise_evaluation,
    evaluation_inputs,
    park_evaluation,
    park_targets,
)

router = APIRouter(tags=["reports"])
PeriodQuery = Annotated[str, Query(description="2026-10 (month), 2026 (year) or 2026-10/12m (12 months)")]
FormatQuery = Annotated[str, Query(alias="format", pattern="^(html|pdf|xlsx)$", description="html, pdf or xlsx")]
LangQuery = Annotated[str, Query(pattern="^(zh|en)$", description="zh (default) or en")]
MonthPath = Annotated[str, PathParam(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")]
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def _store(request: Request) -> EconomyStore:
    return request.app.state.economy_store  # type: ignore[no-any-return]  # opened in the app's lifespan


async def _snapshot(request: Request) -> EconomySnapshot:
    """The economic data, read in a worker thread (the report code reads it synchronously)."""
    return await asyncio.to_thread(EconomySnapshot.read, _store(request))


async def _report(request: Request, influx: InfluxDep, kind: str, ident: str, period: str, fmt: str, lang: str,
                  access: CallerDep, registry: RegistryDep) -> Response:
    try:
        the_period = parse_period(period)
    except PeriodError as exc:
        raise invalid(str(exc), "period") from None
    economy = await _snapshot(request)
    try:
        with influx.errors():
            report = await build_report(influx.client, influx.database, registry, economy,  # type: ignore[arg-type]
                                        kind, ident, the_period, visible=access.can_see_enterprise)  # type: ignore[arg-type]
        body = await render(report, fmt, lang)  # type: ignore[arg-type]
    except RenderError as exc:
        raise ApiError(ErrorCode.INTERNAL, str(exc)) from None
    name = f"{kind}-{ident}-{the_period.label.replace('/', '-')}.{fmt}"
    disposition = "inline" if fmt == "html" else "attachment"
    return Response(body, media_type=MEDIA_TYPES[fmt], headers={"Content-Disposition": f'{disposition}; filename="{name}"'})


@router.get("/reports/enterprise/{enterprise_id}", response_class=Response)
async def enterprise_report(request: Request, found: EnterpriseKpiDep, access: CallerDep, registry: RegistryDep,
                            influx: InfluxDep,
                            period: PeriodQuery, fmt: FormatQuery = "html", lang: LangQuery = "zh") -> Response:
    """An enterprise's energy and per-mu benefit report (the enterprise itself, operations, admins)."""
    return await _report(request, influx, "enterprise", found[1].id, period, fmt, lang, access, registry)


@router.get("/reports/park/{park_id}", response_class=Response)
async def park_report(request: Request, park: ParkKpiDep, access: CallerDep, registry: RegistryDep, influx: InfluxDep,
                      period: PeriodQuery, fmt: FormatQuery = "html", lang: LangQuery = "zh") -> Response:
    """A park's report: energy, targets and progress, enterprises' classes, the annual park ranking."""
    return await _report(request, influx, "park", park.id, period, fmt, lang, access, registry)


# ---- evaluation, targets, assessment ------------------------------------------------------------------------
OptionalPeriodQuery = Annotated[str | None, Query(
    max_length=32, description="2026-10 (the 12 months ending with it), 2026 (a year) or 2026-10/12m; "
                               "default: the 12 months ending with the latest economic data")]
YearQuery = Annotated[int | None, Query(ge=2000, le=2100, description="assessment year (default: the year of "
                                                                     "the latest economic data)")]


def _period_of(economy: EconomySnapshot, text: str | None) -> Period:
    if text is None or not text.strip():
        return default_period(economy)  # type: ignore[arg-type]
    try:
        return parse_period(text)
    except PeriodError as exc:
        raise invalid(str(exc), "period") from None


async def _inputs(request: Request, influx: InfluxDep, registry: RegistryDep, text: str | None) -> Inputs:
    """The evaluation inputs of the period `text` (default: the 12 months up to the latest economic data)."""
    economy = await _snapshot(request)
    period = _period_of(economy, text)
    with influx.errors():
        return await evaluation_inputs(influx.client, influx.database, registry, economy,  # type: ignore[arg-type]
                                       period, cache=request.app.state.reports_inputs_cache)


@router.get("/enterprises/{enterprise_id}/evaluation")
async def get_enterprise_evaluation(request: Request, found: EnterpriseKpiDep, registry: RegistryDep, influx: InfluxDep,
                                    period: OptionalPeriodQuery = None) -> dict[str, Any]:
    """An enterprise's 亩均效益 evaluation explaining itself: each indicator's value (numerator ÷ denominator),
    reference, weight and score, then total, rank and class A–D (the enterprise itself, operations, admins)."""
    inp = await _inputs(request, influx, registry, period)
    return enterprise_evaluation(inp, found[1].id)


@router.get("/parks/{park_id}/evaluation")
async def get_park_evaluation(request: Request, park: ParkKpiDep, registry: RegistryDep, influx: InfluxDep,
                              period: OptionalPeriodQuery = None) -> dict[str, Any]:
    """Every enterprise of a park ranked with its score and class (operations, admins)."""
    inp = await _inputs(request, influx, registry, period)
    return park_evaluation(inp, park.id)


@router.get("/parks/{park_id}/targets")
async def get_park_targets(request: Request, park: ParkKpiDep, registry: RegistryDep, influx: InfluxDep,
                           period: OptionalPeriodQuery = None) -> dict[str, Any]:
    """A park's output-value targets against reported output (10⁸ yuan), new-energy ratio targets against the
    measured ratio, and green-park status, each as progress against target and year (operations, admins)."""
    inp = await _inputs(request, influx, registry, period)
    return park_targets(inp, park)


@router.get("/assessment")
async def get_assessment(request: Request, access: CallerDep, registry: RegistryDep, influx: InfluxDep,
                         year: YearQuery = None) -> dict[str, Any]:
    """The annual assessment: parks ranked with the weighting used; the top ones (seed 000 四(二): the first two)
    marked as rewarded (operations, admins)."""
    access.require_kpi_overview()
    the_year = year if year is not None else default_year(await _snapshot(request))  # type: ignore[arg-type]
    inp = await _inputs(request, influx, registry, f"{the_year:04d}")
    return assessment(inp)


# ---- economic data ---------------------------------------------------------------------------------------------
def _visible_enterprises(access: CallerDep, enterprise: str | None) -> list[str] | None:
    if access.principal.enterprise is not None:  # an enterprise caller: its own figures only
        if enterprise is not None and enterprise != access.principal.enterprise:
            return []
        return [access.principal.enterprise]
    if access.role.value == "emergency":
        return []
    return [enterprise] if enterprise is not None else None


@router.get("/economy")
def list_economy(request: Request, access: CallerDep,
                 enterprise: Annotated[str | None, Query(description="enterprise id")] = None,
                 month_from: Annotated[str | None, Query(alias="from", pattern=MONTH.pattern)] = None,
                 month_to: Annotated[str | None, Query(alias="to", pattern=MONTH.pattern)] = None) -> dict[str, Any]:
    """Monthly economic figures the caller may see (10⁴ yuan, mu, m², persons)."""
    ents = _visible_enterprises(access, enterprise)
    items = [r.as_dict() for r in _store(request).records(ents)
             if (month_from is None or r.record.month >= month_from) and (month_to is None or r.record.month <= month_to)]
    return {"items": items, "total": len(items), "fields": list(FIGURE_KEYS)}


@router.get("/economy/history")
def economy_history(request: Request, access: CallerDep,
                    enterprise: Annotated[str | None, Query()] = None,
                    month: Annotated[str | None, Query(pattern=MONTH.pattern)] = None,
                    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> dict[str, Any]:
    """Who changed which figures when (newest first)."""
    ents = _visible_enterprises(access, enterprise)
    if ents == []:
        return {"items": []}
    changes = _store(request).history(ents[0] if ents else None, month, limit)
    return {"items": [c.as_dict() for c in changes]}


@router.post("/economy/import")
async def import_economy(request: Request, admin: AdminDep, registry: RegistryDep,
                         filename: Annotated[str, Query(description="original file name: .csv or .xlsx")]) -> dict[str, Any]:
    """Import a CSV or Excel file (request body = the file). All rows or none; problems name row and column."""
    known = [e.id for p in registry.parks for e in p.enterprises]
    data = await request.body()
    name = FilePath(filename).name
    try:  # openpyxl parsing and SQLite writes block: both run in a worker thread
        records = await asyncio.to_thread(load_records, name, known, data)
    except ImportProblems as exc:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"{exc.source}: {len(exc.problems)} problem(s), nothing imported",
                       [{"row": p.row, "column": p.column, "message": p.message} for p in exc.problems]) from None
    created, updated, unchanged = await asyncio.to_thread(_store(request).put_many, records, _who(admin),
                                                          f"import:{name}")
    return {"rows": len(records), "created": created, "updated": updated, "unchanged": unchanged}


@router.get("/economy/{enterprise_id}/{month}")
def get_economy(request: Request, found: EnterpriseKpiDep, month: MonthPath) -> dict[str, Any]:
    try:
        return _store(request).get(found[1].id, month).as_dict()
    except NotFound as exc:
        raise ApiError(ErrorCode.NOT_FOUND, str(exc.args[0])) from None


@router.put("/economy/{enterprise_id}/{month}")
def put_economy(request: Request, admin: AdminDep, registry: RegistryDep, enterprise_id: Annotated[str, IdPath],
                month: MonthPath, body: Annotated[dict[str, Any], Body(description="all figures of the month")],
                expected_version: Annotated[int | None, Query(ge=0, le=2**62, description="refuse unless at this version")] = None
                ) -> dict[str, Any]:
    """Create or replace a month's figures (admins); validated like an import row."""
    unknown = set(body) - set(FIGURE_KEYS)
    if unknown:
        raise invalid(f"unknown field(s) {sorted(unknown)}; expected {list(FIGURE_KEYS)}")
    record = _validate_one(registry, enterprise_id, month, body)
    try:
        return _store(request).put(record, _who(admin), "api", expected_version).as_dict()
    except VersionConflict as exc:
        raise ApiError(ErrorCode.CONFLICT, str(exc)) from None


@router.patch("/economy/{enterprise_id}/{month}")
def patch_economy(request: Request, admin: AdminDep, registry: RegistryDep, enterprise_id: Annotated[str, IdPath],
                  month: MonthPath, body: Annotated[dict[str, Any], Body(description="figures to change")],
                  expected_version: Annotated[int | None, Query(ge=0, le=2**62)] = None) -> dict[str, Any]:
    """Change some figures of a month (admins)."""
    store = _store(request)
    try:
        current = store.get(enterprise_id, month)
    except NotFound as exc:
        raise ApiError(ErrorCode.NOT_FOUND, str(exc.args[0])) from None
    unknown = set(body) - set(FIGURE_KEYS)
    if unknown:
        raise invalid(f"unknown field(s) {sorted(unknown)}; expected some of {list(FIGURE_KEYS)}")
    record = _validate_one(registry, enterprise_id, month, current.record.figures() | body)
    try:
        return store.put(record, _who(admin), "api",
                         current.version if expected_version is None else expected_version).as_dict()
    except VersionConflict as exc:
        raise ApiError(ErrorCode.CONFLICT, str(exc)) from None


@router.delete("/economy/{enterprise_id}/{month}", status_code=204)
def delete_economy(request: Request, admin: AdminDep, enterprise_id: Annotated[str, IdPath], month: MonthPath) -> Response:
    try:
        _store(request).delete(enterprise_id, month, _who(admin), "api")
    except NotFound as exc:
        raise ApiError(ErrorCode.NOT_FOUND, str(exc.args[0])) from None
    return Response(status_code=204)


def _validate_one(registry: RegistryDep, enterprise_id: str, month: str, figures: dict[str, Any]) -> EconomicRecord:
    known = [e.id for p in registry.parks for e in p.enterprises]
    header = ["enterprise", "month", *FIGURE_KEYS]
    row: list[object] = [enterprise_id, month, *(figures.get(k) for k in FIGURE_KEYS)]
    try:
        return validate_rows([header, row], known, "body")[0]
    except ImportProblems as exc:
        raise ApiError(ErrorCode.INVALID_REQUEST, "invalid figures",
                       [{"field": p.column.split(" ")[0], "message": p.message} for p in exc.problems]) from None


def _who(access: CallerDep) -> str:
    """Who made a change, as the history records it: `user:<name>` or `key:<key id>`."""
    return f"{access.principal.kind}:{access.principal.subject}"
