"""`simulate history` into the real influxd: the schema first, old days into the 1-minute rollup policy
(the raw default policy would drop them), recent days into the default policy; bad names refused."""

from __future__ import annotations

import httpx
import pytest
import typer
from typer.testing import CliRunner

from simulators.history import DAY_S, history_command, plan_history, write_history
from smartpark.config import InfluxSettings
from tests.conftest import make_registry

pytestmark = pytest.mark.integration
NOW_S = 1_800_000_000 // DAY_S * DAY_S  # a fixed "now", so which day is old does not depend on the clock


async def _count(client: httpx.AsyncClient, db: str, rp: str) -> int:
    r = await client.get("/query", params={"db": db, "q": f'SELECT count(active_power_kw) FROM "{rp}".telemetry'})
    series = r.json()["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


async def test_old_days_go_to_the_rollup_policy_recent_ones_to_raw(influx_url: str, influx_db: str,
                                                                   uid: str) -> None:
    registry = make_registry(uid, [{"id": f"grid{uid}", "role": "grid_meter", "template": "acrel_dtsd1352"}])
    influx = InfluxSettings(url=influx_url, database=influx_db, raw_retention="2d")
    # Three days ending "now": the two oldest start 3 and 2 days back, at or beyond the 2-day raw retention.
    gen = plan_history(registry, 3, end_s=NOW_S, seed=1)
    assert await write_history(gen, influx, progress=False, now_s=NOW_S) == 3 * 1440
    async with httpx.AsyncClient(base_url=influx_url, timeout=30) as client:
        r = await client.get("/query", params={"db": influx_db, "q": "SHOW RETENTION POLICIES"})
        policies = {row[0]: row[-1] for row in r.json()["results"][0]["series"][0]["values"]}
        # The data's timestamps are in 2027 (a fixed now): InfluxDB keeps them whatever the wall clock.
        assert policies[influx.raw_rp] is True and influx.rollup_1m_rp in policies
        assert await _count(client, influx_db, influx.rollup_1m_rp) == 2 * 1440
        assert await _count(client, influx_db, influx.raw_rp) == 1440


def test_bad_database_name_is_refused_naming_the_option(uid: str) -> None:
    app = typer.Typer()
    app.command()(history_command)
    result = CliRunner().invoke(app, ["--days", "1", "--database", 'x"; DROP DATABASE "y'])
    assert result.exit_code == 2
    assert "--database" in result.output and "^[A-Za-z0-9_]+$" in result.output
