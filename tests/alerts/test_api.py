"""The alert routes on the real app (uvicorn, auth, broker, InfluxDB): scoping, filters, ack, delivery log."""

from __future__ import annotations

from pathlib import Path

from analytics.alerts.store import AlertDraft, AlertStore
from tests.alerts.conftest import safety_registry
from tests.api.conftest import ServeFactory


def _draft(uid: str, category: str, enterprise: str, rule: str, severity: str = "warning") -> AlertDraft:
    return AlertDraft(rule=rule, source=f"device/{rule}-{enterprise}", category=category, severity=severity,  # type: ignore[arg-type]
                      level=1, park=f"p{uid}", enterprise=enterprise, device=None, point=None, location="here",
                      value=30.0, limit=25.0, message_zh="测试", message_en="test")


async def test_alert_routes_scope_filter_and_acknowledge(serve: ServeFactory, uid: str, tmp_path: Path) -> None:
    reg = safety_registry(uid)
    e0, e1 = f"e{uid}-0", f"e{uid}-1"
    async with serve(reg) as api:
        store = AlertStore(Path(api.settings.var_dir) / "alerts.sqlite")
        try:
            energy0 = store.raise_or_repeat(_draft(uid, "energy", e0, "demand_over_capacity"), change="raise")[0][1]
            store.raise_or_repeat(_draft(uid, "energy", e1, "demand_over_capacity", "critical"), change="raise")
            gas0 = store.raise_or_repeat(_draft(uid, "safety", e0, "gas_lel", "critical"), change="raise")[0][1]
            async with api.client("operations", prefix="/api/v1") as ops, \
                    api.client("enterprise", e0, prefix="/api/v1") as ent0, \
                    api.client("emergency", prefix="/api/v1") as em:
                page = (await ops.get("/alerts", params={"park": f"p{uid}"})).json()
                assert page["total"] == 2 and {a["enterprise"] for a in page["items"]} == {e0, e1}
                crit = (await ops.get("/alerts", params={"severity": "critical"})).json()
                assert [a["enterprise"] for a in crit["items"] if a["park"] == f"p{uid}"] == [e1]
                # An enterprise sees only its own; another's alert is "not found".
                mine = (await ent0.get("/alerts")).json()
                assert [a["id"] for a in mine["items"]] == [energy0["id"]]
                assert (await ent0.get("/alerts", params={"enterprise": e1})).json()["total"] == 0
                other = page["items"][0]["id"] if page["items"][0]["enterprise"] == e1 else page["items"][1]["id"]
                assert (await ent0.get(f"/alerts/{other}")).status_code == 404
                # Emergency management: safety events yes, energy alerts no.
                assert (await em.get("/alerts")).status_code == 403
                events = (await em.get("/safety-events", params={"state": "raised"})).json()
                assert [a["id"] for a in events["items"] if a["park"] == f"p{uid}"] == [gas0["id"]]
                assert (await em.get(f"/safety-events/{energy0['id']}")).status_code == 404
                # Acknowledge with a comment; a second acknowledgement conflicts.
                r = await em.post(f"/safety-events/{gas0['id']}/ack", json={"comment": "crew dispatched"})
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["state"] == "acknowledged" and body["ack_comment"] == "crew dispatched" and body["acked_by"]
                again = await em.post(f"/safety-events/{gas0['id']}/ack", json={"comment": "x"})
                assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
                hist = (await em.get(f"/safety-events/{gas0['id']}/history")).json()
                assert [h["event"] for h in hist] == ["raised", "acknowledged"]
                assert (await em.get(f"/safety-events/{gas0['id']}/deliveries")).json() == []
                bad = await ops.get("/alerts", params={"state": "open"})
                assert bad.status_code == 422
                assert (await ops.get("/alerts/not-a-uuid")).status_code in (404, 422)
                async with api.client("operations") as anon:
                    anon.headers.pop("Authorization")
                    assert (await anon.get("/api/v1/safety-events")).status_code == 401
        finally:
            store.close()
