"""Alert rules as callers that do not see everything get them: an enterprise sees its own daily quota only,
emergency management no quota; neither learns who changed the rules nor their history."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import ServeFactory
from tests.api.scoped import scoped_registry


def quotas_everywhere(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [body["override"]["quotas"], body["effective"]["quotas"]]


async def test_rules_show_only_the_callers_own_quota_and_no_history(serve: ServeFactory, uid: str) -> None:
    a, e1, e2 = f"a{uid}", f"a{uid}-e1", f"a{uid}-e2"
    async with serve(scoped_registry(uid)) as api, api.client("admin", prefix="/api/v1") as admin, \
            api.client("operations", prefix="/api/v1") as ops, \
            api.client("enterprise", e1, prefix="/api/v1") as ent, \
            api.client("emergency", prefix="/api/v1") as emerg:
        r = await admin.put(f"/rules/{a}", json={"version": 1, "quotas": {e1: 1000, e2: 2000}})
        assert r.status_code == 200, r.text

        full = (await ops.get(f"/rules/{a}")).json()
        assert quotas_everywhere(full) == [{e1: 1000, e2: 2000}] * 2
        assert full["updated_by"] and [h["revision"] for h in full["history"]] == [1]

        own = (await ent.get(f"/rules/{a}")).json()
        assert quotas_everywhere(own) == [{e1: 1000}] * 2
        assert "updated_by" not in own and "history" not in own
        assert own["effective"]["rules"] == full["effective"]["rules"]  # the rules themselves stay visible

        none = (await emerg.get(f"/rules/{a}")).json()
        assert quotas_everywhere(none) == [{}, {}]
        assert "updated_by" not in none and "history" not in none

        listed = (await ent.get("/rules")).json()["parks"]
        assert [(p["park"], p["override"]["quotas"]) for p in listed] == [(a, {e1: 1000})]
        assert all("updated_by" not in p for p in listed)
        assert (await ops.get("/rules")).json()["parks"][0]["updated_by"] == full["updated_by"]

        kept = (await ent.get(f"/rules/{a}/revisions/1")).json()
        assert kept["quotas"] == {e1: 1000}
        assert (await ops.get(f"/rules/{a}/revisions/1")).json()["quotas"] == {e1: 1000, e2: 2000}
