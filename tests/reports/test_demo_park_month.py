"""Issue 8: a month of simulated history for one demo enterprise (the shipped registry, the real history
writer, the real influxd), its monthly report rendered as PDF pages (pdftoppm) to look at, and the report's
figures cross-checked against the API's energy and evaluation endpoints."""

from __future__ import annotations

import io
import struct
import subprocess
from pathlib import Path

import openpyxl
import pytest

from deploy.services import RunningService
from parkmodel.registry import Registry, load_registry, parse_registry
from reports.demo_data import demo_months, seed_demo_economy
from reports.labels import labels
from reports.periods import parse_period
from reports.service import generate
from simulators.history import history_influx, plan_history, write_history
from smartpark.config import InfluxSettings
from tests.api.conftest import api_settings, serve_api

pytestmark = pytest.mark.integration
STEP_S = 900  # 15-minute readings: a month in seconds, counters as exact as at 1 minute
#: Raw retention long enough that last month's days land in the default (raw) policy that analytics reads.
RAW_RETENTION = "120d"
ENERGY_KEYS = ("grid_import", "generation", "consumed")


def first_demo_enterprise() -> Registry:
    """The shipped registry cut down to park `mengsu` and its first enterprise."""
    shipped = load_registry()
    park = shipped.park("mengsu")
    assert park is not None and park.enterprises, "the shipped registry lost park mengsu"
    data = shipped.model_dump(mode="json")
    data["parks"] = [p for p in data["parks"] if p["id"] == park.id]
    data["parks"][0]["enterprises"] = data["parks"][0]["enterprises"][:1]
    return parse_registry(data, "shipped registry, one enterprise")


def summary_of(xlsx: bytes) -> dict[str, object]:
    book = openpyxl.load_workbook(io.BytesIO(xlsx), read_only=True)
    return {row[0]: row[1] for row in book["summary"].iter_rows(min_row=2, values_only=True)}


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def pdf_pages(pdf: bytes, folder: Path) -> list[Path]:
    """The PDF rendered to PNG pages at 60 dpi (pdftoppm)."""
    out = folder / "report.pdf"
    out.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(out), str(folder / "page")], check=True, timeout=60)
    return sorted(folder.glob("page-*.png"))


async def test_demo_enterprise_month_report_matches_the_api(broker: RunningService, influx_url: str, influx_db: str,
                                                            uid: str, tmp_path: Path) -> None:
    registry = first_demo_enterprise()
    park = registry.parks[0]
    ent = park.enterprises[0]
    month = demo_months(1)[0]  # the last complete month, Beijing time
    period = parse_period(month)
    days = (period.end_ms - period.start_ms) // 86_400_000

    base = api_settings(broker.host, broker.port, influx_url, influx_db, tmp_path / f"var{uid}")
    influx = history_influx(InfluxSettings(url=influx_url, timeout_s=30, raw_retention=RAW_RETENTION),
                            database=influx_db)
    settings = base.model_copy(update={"influx": influx})
    gen = plan_history(registry, days, end_s=period.end_ms / 1000, step_s=STEP_S, seed=8)
    assert gen.plan.start_s * 1000 == period.start_ms  # the history is exactly the month
    devices = sum(len(g.devices) for g in ent.gateways)
    assert await write_history(gen, influx, progress=False) == days * 86_400 // STEP_S * devices
    assert seed_demo_economy(settings, registry) > 0

    pdf = await generate(settings, registry, "enterprise", ent.id, period, "pdf")
    assert pdf.startswith(b"%PDF")
    pages = pdf_pages(pdf, tmp_path)
    assert 1 <= len(pages) <= 6
    for page in pages:  # A4 at 60 dpi is about 496 × 702 px
        width, height = png_size(page)
        assert 400 <= width <= 800 and 400 <= height <= 1100, (page.name, width, height)
        assert page.stat().st_size > 5_000, f"{page.name} looks blank"

    report = summary_of(await generate(settings, registry, "enterprise", ent.id, period, "xlsx"))
    L = labels("zh")
    assert report[L["period"]] == month and report[L["energy_source"]] == "telemetry"

    async with serve_api(settings, registry) as api, api.client("operations", prefix="/api/v1") as client:
        r = await client.get(f"/enterprises/{ent.id}/energy", params={"period": month})
        assert r.status_code == 200, r.text
        energy = r.json()
        r = await client.get(f"/enterprises/{ent.id}/evaluation", params={"period": month})
        assert r.status_code == 200, r.text
        evaluation = r.json()
        loads = []
        for g in ent.gateways:
            for d in g.devices:
                if d.role.value == "load_meter":
                    r = await client.get(f"/devices/{d.id}/energy", params={"period": month})
                    assert r.status_code == 200, r.text
                    loads.append(r.json()["meter"]["import_kwh"])

    kwh = energy["electricity_kwh"]
    assert energy["coverage"]["days_with_data"] == days and energy["coverage"]["min_daily_coverage"] > 0.98
    for key in ENERGY_KEYS:
        assert report[L[f"{key}_kwh"] + " kWh"] == pytest.approx(kwh[key], rel=1e-9), key
    assert report[L["tce_eqv"]] == pytest.approx(energy["tce"]["total"], rel=1e-9)
    assert report[L["co2_t"]] == pytest.approx(energy["co2"]["total_t"], rel=1e-9)
    assert report[L["new_energy_ratio"]] == pytest.approx(energy["new_energy_ratio"], rel=1e-9)
    # The 12-month evaluation window holds only this month of energy: the same figures again, and the same class.
    assert evaluation["evaluation_period"] == report[L["eval_period"]]
    assert evaluation["energy"]["consumed_kwh"] == pytest.approx(kwh["consumed"], rel=1e-9)
    assert evaluation["energy"]["tce_equivalent"] == pytest.approx(energy["tce"]["total"], rel=1e-9)
    assert evaluation["energy"]["co2_t"] == pytest.approx(energy["co2"]["total_t"], rel=1e-9)
    assert evaluation["evaluated"] and evaluation["class"] == report[L["class"]]
    assert evaluation["total"] == pytest.approx(report[L["total_score"]])

    # Plausible: a plant of this size uses GWh a month, and its meters balance (simulators.model: the grid meter
    # is the balance of loads, PV, green supply and storage) to the meters' gain error and storage losses.
    contracted_kwh = sum(d.rated_kw or 0 for g in ent.gateways for d in g.devices if d.role.value == "load_meter")
    assert 0.05 * contracted_kwh * 24 * days < kwh["consumed"] < contracted_kwh * 24 * days
    assert kwh["generation"] > 0 and kwh["grid_import"] > 0 and 0 < energy["new_energy_ratio"] < 1
    assert kwh["consumed"] == pytest.approx(sum(loads), rel=0.005)  # measured: 0.24 %
    assert energy["tce"]["total"] > 0 and energy["co2"]["total_t"] > 0
