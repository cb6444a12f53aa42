"""A month of meter counters written to the real InfluxDB, reported through the analytics core, the CLI path,
the API (with scoping and an import) and Chromium; numbers cross-checked against the written data."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import httpx
import openpyxl
import pytest

from analytics.backfill import backfill
from analytics.devices import build_index
from parkmodel.registry import Registry, parse_registry
from reports.periods import month_start_ms, parse_period
from reports.service import build_report, generate
from reports.store import EconomyStore, economy_path
from tests.api.conftest import api_settings, serve_api

QUARTER_MS = 15 * 60_000


def mount_reports() -> None:
    """Mount api/routes/reports.py on the versioned router unless api/main.py already does (the lead's step)."""
    from api.main import api_router
    from api.routes import reports

    if not any(getattr(r, "path", "") == "/api/v1/reports/park/{park_id}" for r in api_router.routes):
        api_router.include_router(reports.router)
IMPORT_PER_Q, PV_PER_Q, GAS_PER_Q = 10.0, 5.0, 2.0  # kWh, kWh, m³ per 15 minutes
DAYS = 31  # October 2026


def registry_of(uid: str) -> Registry:
    devices = [{"id": f"m{uid}", "role": "grid_meter", "template": "acrel_dtsd1352", "name": "关口表", "location": "配电室"},
               {"id": f"pv{uid}", "role": "pv", "template": "huawei_sun2000", "name": "屋顶光伏", "rated_kw": 100},
               {"id": f"gas{uid}", "role": "gas_meter", "template": "gas_flowmeter_f64", "name": "天然气表"}]
    return parse_registry({"version": 1, "parks": [{"id": f"p{uid}", "name": "测试园区", "enterprises": [
        {"id": f"e{uid}", "name": "测试企业", "land_area_mu": 40, "gateways": [{"id": f"g{uid}", "devices": devices}]},
        {"id": f"f{uid}", "name": "另一企业", "land_area_mu": 60, "gateways": []}]}]})


def write_month(influx_url: str, db: str, uid: str) -> None:
    """Counters every 15 min from 2026-09-30 23:00 to 2026-11-01 01:00 (UTC+8)."""
    start = month_start_ms(2026, 10) - 3_600_000
    lines = []
    for k in range(DAYS * 96 + 9):
        ts = start + k * QUARTER_MS
        tag = f"park=p{uid},enterprise=e{uid}"
        lines.append(f"telemetry,{tag},device=m{uid},role=grid_meter energy_import_kwh={1000 + k * IMPORT_PER_Q},"
                     f"energy_export_kwh=0.0 {ts}")
        lines.append(f"telemetry,{tag},device=pv{uid},role=pv energy_export_kwh={500 + k * PV_PER_Q} {ts}")
        lines.append(f"telemetry,{tag},device=gas{uid},role=gas_meter gas_volume_m3={20 + k * GAS_PER_Q} {ts}")
    r = httpx.post(f"{influx_url}/write", params={"db": db, "precision": "ms"}, content="\n".join(lines))
    assert r.status_code == 204, r.text


IMPORT_KWH = DAYS * 96 * IMPORT_PER_Q  # 29,760
PV_KWH = DAYS * 96 * PV_PER_Q  # 14,880
GAS_M3 = DAYS * 96 * GAS_PER_Q  # 5,952


def economy(tmp_path: Path, uid: str) -> EconomyStore:
    (tmp_path / "e.csv").write_text(
        "企业,月份,用地面积(亩),工业总产值(万元),工业增加值(万元),实缴税金(万元),研发经费(万元),从业人员(人)\n"
        f"e{uid},2026-10,40,800,200,60,10,50\nf{uid},2026-10,60,600,150,30,,80\n", encoding="utf-8")
    store = EconomyStore(economy_path(tmp_path / "var"))
    from reports.economy import load_records

    store.put_many(load_records(tmp_path / "e.csv", [f"e{uid}", f"f{uid}"]), "tester", "import:e.csv")
    return store


async def test_report_numbers_match_the_written_counters(influx_url: str, influx_db: str, uid: str,
                                                          tmp_path: Path) -> None:
    registry = registry_of(uid)
    write_month(influx_url, influx_db, uid)
    store = economy(tmp_path, uid)
    period = parse_period("2026-10")
    async with httpx.AsyncClient(base_url=influx_url, timeout=60) as client:
        live = await build_report(client, influx_db, registry, store, "enterprise", f"e{uid}", period)
        assert live.meta["energy_source"] == "telemetry"
        t = live.energy.totals
        assert t.get("grid_import_kwh") == pytest.approx(IMPORT_KWH, abs=0.01)
        assert t.get("generation_kwh") == pytest.approx(PV_KWH, abs=0.01)
        assert t.get("consumed_kwh") == pytest.approx(IMPORT_KWH + PV_KWH, abs=0.01)
        assert t.get("gas_m3") == pytest.approx(GAS_M3, abs=0.01)
        assert live.energy.ratio == pytest.approx(1 / 3)
        c = live.energy.carbon
        assert c.tce_equivalent == pytest.approx(((IMPORT_KWH + PV_KWH) * 0.1229 + GAS_M3 * 1.2143) / 1000)
        assert c.co2_t == pytest.approx((IMPORT_KWH * 0.6479 + GAS_M3 * 2.1622) / 1000)
        meters = {m.device: m for m in live.meters}
        assert meters[f"m{uid}"].quantities["import_kwh"] == pytest.approx(IMPORT_KWH, abs=0.01)
        assert meters[f"pv{uid}"].days == DAYS and meters[f"pv{uid}"].coverage == pytest.approx(1.0)
        assert live.per_mu["tax"] == pytest.approx(60 / 40)
        assert live.evaluation is not None and live.evaluation.of == 2 and live.evaluation.klass in "ABCD"
        # Once analytics has stored its daily rows, the report reads them and says the same.
        await backfill(client, influx_db, build_index(registry), period.start_ms, period.end_ms, devices=True)
        stored = await build_report(client, influx_db, registry, store, "enterprise", f"e{uid}", period)
    assert stored.meta["energy_source"] == "stored"
    assert stored.energy.totals.values == pytest.approx(live.energy.totals.values)
    assert stored.energy.carbon == live.energy.carbon


def pdf_pages_text(pdf: bytes, folder: Path, kind: str) -> str:
    """Render the PDF to PNG pages (pdftoppm; 1 to 4 of them) and return its text (pdftotext)."""
    out = folder / f"{kind}.pdf"
    out.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(out), str(folder / kind)], check=True, timeout=60)
    assert 1 <= len(sorted(folder.glob(f"{kind}-*.png"))) <= 4
    return subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True, check=True).stdout


async def test_pdf_pages_and_cli_path(influx_url: str, influx_db: str, uid: str, tmp_path: Path) -> None:
    registry = registry_of(uid)
    write_month(influx_url, influx_db, uid)
    economy(tmp_path, uid)
    settings = api_settings("127.0.0.1", 1, influx_url, influx_db, tmp_path / "var")
    for kind, ident in (("enterprise", f"e{uid}"), ("park", f"p{uid}")):
        pdf = await generate(settings, registry, kind, ident, parse_period("2026-10"), "pdf")  # type: ignore[arg-type]
        assert pdf.startswith(b"%PDF")
        text = pdf_pages_text(pdf, tmp_path, kind)
        assert "29,760.0" in text and "33.3 %" in text  # grid import and the new-energy ratio, as written


async def test_api_reports_scoped_and_economy_edited(broker: object, influx_url: str, influx_db: str, uid: str,
                                                      tmp_path: Path) -> None:
    registry = registry_of(uid)
    write_month(influx_url, influx_db, uid)
    settings = api_settings(broker.host, broker.port, influx_url, influx_db, tmp_path / "var")  # type: ignore[attr-defined]
    mount_reports()
    async with serve_api(settings, registry) as api:
        async with api.client("admin", prefix="/api/v1") as admin:
            bad = await admin.post("/economy/import", params={"filename": "bad.csv"},
                                   content=f"enterprise,month,land_area_mu\nnope,2026-13,-1\ne{uid},2026-10,x\n".encode())
            assert bad.status_code == 422
            problems = bad.json()["error"]["details"]
            assert {"row": 1, "column": "output_value_10k_yuan", "message": "required column is missing"} in problems
            good = (f"enterprise,month,land_area_mu,output_value_10k_yuan,value_added_10k_yuan,tax_paid_10k_yuan,"
                    f"employees\ne{uid},2026-10,40,800,200,60,50\nf{uid},2026-10,60,600,150,30,80\n")
            r = await admin.post("/economy/import", params={"filename": "good.csv"}, content=good.encode())
            assert r.json() == {"rows": 2, "created": 2, "updated": 0, "unchanged": 0}
            r = await admin.patch(f"/economy/e{uid}/2026-10", json={"tax_paid_10k_yuan": 80})
            assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["updated_by"].startswith("key")
            hist = (await admin.get("/economy/history", params={"enterprise": f"e{uid}"})).json()["items"]
            assert (hist[0]["action"], hist[0]["changed_fields"]) == ("update", ["tax_paid_10k_yuan"])
            assert hist[0]["before"]["tax_paid_10k_yuan"] == 60 and hist[0]["after"]["tax_paid_10k_yuan"] == 80
            park = await admin.get(f"/reports/park/p{uid}", params={"period": "2026-10", "format": "xlsx"})
            assert park.status_code == 200 and park.headers["content-type"].startswith("application/vnd.openxml")
        async with api.client("enterprise", f"e{uid}", prefix="/api/v1") as ent:
            r = await ent.get(f"/reports/enterprise/e{uid}", params={"period": "2026-10", "format": "xlsx"})
            assert r.status_code == 200
            book = openpyxl.load_workbook(io.BytesIO(r.content))
            summary = {row[0]: row[1] for row in book["summary"].iter_rows(values_only=True)}
            assert summary["电网购入 kWh"] == pytest.approx(IMPORT_KWH, abs=0.01)
            assert summary["tax"] == pytest.approx(80 / 40)
            assert (await ent.get(f"/reports/enterprise/f{uid}", params={"period": "2026-10"})).status_code == 404
            assert (await ent.get(f"/reports/park/p{uid}", params={"period": "2026-10"})).status_code == 403
            assert [i["enterprise"] for i in (await ent.get("/economy")).json()["items"]] == [f"e{uid}"]
            assert (await ent.patch(f"/economy/e{uid}/2026-10", json={"tax_paid_10k_yuan": 1})).status_code == 403
            bad_period = await ent.get(f"/reports/enterprise/e{uid}", params={"period": "2026-13"})
            assert bad_period.status_code == 422
