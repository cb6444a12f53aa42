"""Render a built report as HTML (Jinja2), PDF (headless Chromium prints the HTML) or Excel (openpyxl)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import os
import signal
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

import jinja2

from parkmodel.registry import Enterprise, Park
from reports.build import EnterpriseReport, ParkReport
from reports.evaluation import Evaluation
from reports.labels import Lang, labels

Format = Literal["html", "pdf", "xlsx"]
MEDIA_TYPES: dict[str, str] = {
    "html": "text/html; charset=utf-8", "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
TEMPLATES = Path(__file__).parent / "templates"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--no-pdf-header-footer")
Report = EnterpriseReport | ParkReport


class RenderError(RuntimeError):
    """A format could not be produced (e.g. Chromium failed); the message says why."""


def num(value: float | None, digits: int = 2) -> str:
    """Thousands-separated number, `—` for None or non-finite."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:,.{digits}f}"


def pct(value: float | None, digits: int = 1) -> str:
    """A ratio 0..1 as a percentage."""
    return "—" if value is None or not math.isfinite(value) else f"{value * 100:.{digits}f} %"


def ref(value: float | tuple[float, float] | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, tuple):
        return f"{num(value[0], 3)} – {num(value[1], 3)}"
    return num(value, 3)


_env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True)
_env.filters.update(num=num, pct=pct, ref=ref)


BEIJING = timezone(timedelta(hours=8))


def generated_text(ms: int) -> str:
    """Epoch ms as Beijing time."""
    return datetime.fromtimestamp(ms / 1000, BEIJING).strftime("%Y-%m-%d %H:%M (UTC+8)")


def render_html(report: Report, lang: Lang = "zh") -> str:
    """The report as a self-contained HTML page (Chinese by default)."""
    L = labels(lang)

    def pname(p: Park) -> str:
        return p.name if lang == "zh" or not p.name_en else p.name_en

    def ename(e: Enterprise) -> str:
        return e.name if lang == "zh" or not e.name_en else e.name_en

    def cname(ev: Evaluation) -> str:
        return ev.class_zh if lang == "zh" else ev.class_en

    owners = {}
    park = report.park
    for ent in park.enterprises:
        for gw in ent.gateways:
            for dev in gw.devices:
                owners[dev.id] = ename(ent)
    title = L["enterprise_report"] if isinstance(report, EnterpriseReport) else L["park_report"]
    subject = ename(report.enterprise) if isinstance(report, EnterpriseReport) else pname(report.park)
    return _env.get_template("report.html").render(
        r=report, L=L, lang=lang, title=title, subject_name=subject, pname=pname, ename=ename, cname=cname,
        owner=lambda d: owners.get(d, ""), generated=generated_text(int(report.meta["generated_at_ms"])))


def _kill_group(pgid: int) -> None:
    """SIGKILL every process left in Chromium's process group (none left: nothing to do)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def html_to_pdf(html: str, chromium: str = "chromium", timeout_s: float = 60.0) -> bytes:
    """Print HTML to PDF with headless Chromium (an asyncio subprocess; killed on timeout or cancellation).

    Raises:
        RenderError: Chromium is missing, failed or timed out.
    """
    with tempfile.TemporaryDirectory(prefix="sp-report-") as tmp:
        src, out = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        src.write_text(html, encoding="utf-8")
        args = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile", f"--print-to-pdf={out}", src.as_uri()]
        try:
            # A session (and process group) of its own: Chromium's helpers (zygote, GPU, renderers) are
            # killed with it, and the terminal's Ctrl-C does not reach them.
            proc = await asyncio.create_subprocess_exec(chromium, *args, stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE, start_new_session=True)
        except FileNotFoundError:
            raise RenderError(f"{chromium!r} not found: install Debian's chromium to render PDF") from None
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            raise RenderError(f"chromium did not finish within {timeout_s:g} s") from None
        finally:
            _kill_group(proc.pid)  # also after a clean exit: a helper may linger
            if proc.returncode is None:
                await proc.wait()
        if proc.returncode != 0 or not out.exists():
            raise RenderError(f"chromium failed (exit {proc.returncode}): {err.decode(errors='replace')[-500:]}")
        return out.read_bytes()


def render_xlsx(report: Report, lang: Lang = "zh") -> bytes:
    """The report as an Excel workbook: a summary sheet, energy, months, evaluation, targets, ranking, meters."""
    import openpyxl
    from openpyxl.styles import Font, PatternFill

    L = labels(lang)
    book = openpyxl.Workbook()
    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor="E8EEF2")

    def sheet(title: str, header: list[str], rows: list[list[object]], first: bool = False) -> None:
        ws = book.active if first else book.create_sheet()
        assert ws is not None
        ws.title = title[:31]
        ws.append(header)
        for cell in ws[1]:
            cell.font, cell.fill = bold, fill
        for row in rows:
            ws.append([None if isinstance(v, float) and not math.isfinite(v) else v for v in row])
        for col in ws.columns:
            width = max(len(str(c.value)) if c.value is not None else 0 for c in col)
            ws.column_dimensions[col[0].column_letter].width = min(max(10, width * 1.3), 60)

    e = report.energy
    is_ent = isinstance(report, EnterpriseReport)
    subject = report.enterprise.id if isinstance(report, EnterpriseReport) else report.park.id
    summary: list[list[object]] = [
        [L["enterprise"] if is_ent else L["park"], subject], [L["period"], report.period.label],
        [L["eval_period"], report.eval_period.label],
        [L["generated"], generated_text(int(report.meta["generated_at_ms"]))],
        [L["tce_eqv"], e.carbon.tce_equivalent], [L["tce_eqlv"], e.carbon.tce_equal_value],
        [L["scope1"] + " t", e.carbon.scope1_t], [L["scope2"] + " t", e.carbon.scope2_t],
        [L["co2_t"], e.carbon.co2_t], [L["new_energy_ratio"], e.ratio],
        *[[L[k] + " kWh", e.totals.get(k)] for k in ("grid_import_kwh", "grid_export_kwh", "generation_kwh",
                                                      "green_supply_kwh", "consumed_kwh", "renewable_consumed_kwh")],
        *[[k, v] for k, v in report.per_mu.items()],
        [L["energy_source"], report.meta["energy_source"]], [L["grid_factor"], report.meta["grid_factor"]],
        [L["revision"], report.meta["evaluation_revision"]],
    ]
    if isinstance(report, EnterpriseReport) and report.evaluation is not None:
        summary += [[L["total_score"], report.evaluation.total], [L["rank"], report.evaluation.rank],
                    [L["class"], report.evaluation.klass]]
    sheet("summary", [L["indicator"], L["value"]], summary, first=True)
    sheet("energy", [L["carrier"], L["quantity"], L["unit"], L["coef"], L["tce_eqv"], L["tce_eqlv"]],
          [[L[c.key], c.quantity, c.unit, c.coefficient, c.tce_equivalent, c.tce_equal_value] for c in e.carriers])
    if e.months:
        sheet("months", [L["month"], "consumed_kwh", "gas_m3", "steam_t", "water_m3", "tce", "co2_t",
                         "new_energy_ratio", L["days"]],
              [[m.month, m.consumed_kwh, m.gas_m3, m.steam_t, m.water_m3, m.tce_equivalent, m.co2_t,
                m.new_energy_ratio, m.days] for m in e.months])
    if isinstance(report, EnterpriseReport):
        if report.evaluation is not None and report.evaluation.indicators:
            sheet("evaluation", ["key", L["indicator"], L["unit"], L["value"], "numerator", "denominator",
                                 L["reference"], L["weight"], L["score"], L["note"], L["source"]],
                  [[i.key, i.name_zh if lang == "zh" else i.name_en, i.unit, i.value, i.numerator, i.denominator,
                    ref(i.reference), i.weight, i.score, i.note, i.source] for i in report.evaluation.indicators])
        sheet("economy", ["month", "land_area_mu", "output_value", "value_added", "tax_paid", "rd_expense",
                          "revenue", "employees"],
              [[r.month, r.land_area_mu, r.output_value_10k_yuan, r.value_added_10k_yuan, r.tax_paid_10k_yuan,
                r.rd_expense_10k_yuan, r.revenue_10k_yuan, r.employees] for r in report.economy_records])
    else:
        sheet("enterprises", ["enterprise", "land_area_mu", "consumed_kwh", "tce", "co2_t", "new_energy_ratio",
                              "output_value", "tax_paid", "score", "class"],
              [[ent.id, ent.land_area_mu, en.totals.get("consumed_kwh"), en.carbon.tce_equivalent, en.carbon.co2_t,
                en.ratio, ec.output_value if ec else None, ec.tax_paid if ec else None,
                ev.total if ev and ev.rank else None, ev.klass if ev else None]
               for ent, en, ec, ev in report.enterprises])
        sheet("targets", ["kind", "area", "target_year", "target", "actual", "progress", "status", "source"],
              [[p.kind, p.area, p.target_year, p.target, p.actual, p.ratio, p.status, p.source]
               for p in [*report.output, *report.new_energy, *([report.green_park] if report.green_park else [])]])
        inds = next((ev.indicators for ev in report.ranking if ev.indicators), [])
        sheet("ranking", ["rank", "park", *[f"{i.key} (w {i.weight:g})" for i in inds], "total", "reward"],
              [[ev.rank or None, ev.id, *[i.value for i in ev.indicators], ev.total if ev.rank else None,
                bool(ev.rank and ev.rank <= report.reward_top)] for ev in report.ranking])
    sheet("meters", ["device", "name", "role", "location", "quantities", "days", "coverage", "used_for"],
          [[m.device, m.name, m.role, m.location, "; ".join(f"{k}={v:.3f}" for k, v in m.quantities.items()),
            m.days, m.coverage, m.used_for] for m in report.meters])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


async def render(report: Report, fmt: Format, lang: Lang = "zh") -> bytes:
    """The report in `fmt` (PDF is printed by Chromium in a subprocess, off the event loop)."""
    if fmt == "html":
        return render_html(report, lang).encode()
    if fmt == "pdf":
        return await html_to_pdf(render_html(report, lang))
    return render_xlsx(report, lang)  # a few tens of ms: not worth a thread
