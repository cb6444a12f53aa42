"""KPI history from measurement `kpi` (means of powers, last of day totals), the enterprise ranking table and
CSV export, against the real influxd."""

from __future__ import annotations

import csv
import io
import time

from tests.api.conftest import ServeFactory
from tests.api.scoped import scoped_registry
from tests.api.test_telemetry_routes import write_lines


async def test_kpi_history_ranking_and_csv(serve: ServeFactory, influx_url: str, influx_db: str, uid: str) -> None:
    a, e1, e2 = f"a{uid}", f"a{uid}-e1", f"a{uid}-e2"
    start = (int(time.time() * 1000) // 3_600_000 - 3) * 3_600_000  # three hours ago, hour-aligned
    lines = []
    for i in range(120):  # two hours, one row a minute; load ramps, today's energy counts up
        ts = start + i * 60_000
        lines.append(f"kpi,scope=park,park={a} load_kw={1000 + i},consumed_today_kwh={10.0 * i},"
                     f"new_energy_ratio_today=0.5 {ts}")
        lines.append(f"kpi,scope=enterprise,park={a},enterprise={e1} load_kw={100 + i},consumed_today_kwh={2.0 * i} {ts}")
        lines.append(f"kpi,scope=enterprise,park={a},enterprise={e2} load_kw=900,consumed_today_kwh={8.0 * i} {ts}")
    write_lines(influx_url, influx_db, lines)
    async with serve(scoped_registry(uid)) as api, api.client(prefix="/api/v1") as client:
        body = (await client.get(f"/parks/{a}/kpi/history",
                                 params={"start": start, "end": start + 7_200_000, "every": "1h"})).json()
        assert body["every_s"] == 3600 and body["scope"] == "park"
        assert set(body["fields"]) == {"load_kw", "consumed_today_kwh", "new_energy_ratio_today"}
        assert [p["load_kw"] for p in body["points"]] == [1029.5, 1089.5]  # bucket means
        assert [p["consumed_today_kwh"] for p in body["points"]] == [590.0, 1190.0]  # last of each bucket
        assert [p["ts"] for p in body["points"]] == [start, start + 3_600_000]

        ent = (await client.get(f"/enterprises/{e1}/kpi/history",
                                params={"start": start, "end": start + 7_200_000, "every": "1h",
                                        "fields": "load_kw"})).json()
        assert ent["enterprise"] == e1 and ent["fields"] == ["load_kw"]
        assert [p["load_kw"] for p in ent["points"]] == [129.5, 189.5]

        r = await client.get(f"/parks/{a}/kpi/history", params={"start": start, "end": start + 7_200_000,
                                                                "every": "30m", "format": "csv"})
        assert r.headers["content-type"].startswith("text/csv")
        assert f'filename="{a}-kpi.csv"' in r.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
        assert len(rows) == 4 and float(rows[0]["load_kw"]) == 1014.5 and rows[0]["time"].endswith("+08:00")

        ranking = (await client.get(f"/parks/{a}/enterprises/kpi")).json()
        assert [(r["enterprise"], r["kpi"]["consumed_today_kwh"]) for r in ranking] == [(e1, 238.0), (e2, 952.0)]
        assert ranking[0]["consumed_today_kwh_per_mu"] == 238.0 / 50 and ranking[1]["land_area_mu"] == 100
        table = await client.get(f"/parks/{a}/enterprises/kpi", params={"format": "csv"})
        rows = list(csv.DictReader(io.StringIO(table.content.decode("utf-8-sig"))))
        assert [r["name"] for r in rows] == ["企业1", "企业2"]

        r = await client.get(f"/parks/{a}/kpi/history", params={"fields": "load_kw,drop measurement"})
        assert r.status_code == 422 and r.json()["error"]["details"]["param"] == "fields"
        device_csv = await client.get(f"/devices/{a}-m1/history", params={"format": "csv"})
        assert device_csv.status_code == 200 and device_csv.content.decode("utf-8-sig").startswith("time,ts")
