"""Every role against every resource kind: what it sees, and that another enterprise's things are 404."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import ServeFactory
from tests.api.scoped import scoped_registry

ROLES = ("operations", "admin", "enterprise", "emergency")


def matrix(uid: str) -> list[tuple[str, tuple[int, int, int, int]]]:
    """(path, expected status for operations, admin, enterprise of a{uid}-e1, emergency)."""
    a, b = f"a{uid}", f"b{uid}"
    e1, e2 = f"{a}-e1", f"{a}-e2"
    return [
        ("/parks", (200, 200, 200, 200)),
        (f"/parks/{a}", (200, 200, 200, 200)),
        (f"/parks/{b}", (200, 200, 404, 200)),
        (f"/parks/{a}/enterprises", (200, 200, 200, 200)),
        (f"/enterprises/{e1}", (200, 200, 200, 200)),
        (f"/enterprises/{e2}", (200, 200, 404, 200)),
        (f"/enterprises/{b}-e1", (200, 200, 404, 200)),
        (f"/enterprises/{e2}/devices", (200, 200, 404, 200)),
        (f"/devices/{a}-m1", (200, 200, 200, 404)),
        (f"/devices/{a}-m2", (200, 200, 404, 404)),
        (f"/devices/{a}-gas1", (200, 200, 200, 200)),
        (f"/devices/{a}-fire2", (200, 200, 404, 200)),
        (f"/devices/{a}-m2/latest", (200, 200, 404, 404)),
        (f"/devices/{a}-m2/history", (200, 200, 404, 404)),
        (f"/devices/{a}-fire2/latest", (200, 200, 404, 200)),
        (f"/devices/{a}-fire2/history", (200, 200, 404, 200)),
        (f"/devices/{a}-m1/history?format=csv", (200, 200, 200, 404)),
        (f"/parks/{a}/kpi", (200, 200, 403, 403)),
        (f"/parks/{b}/kpi", (200, 200, 403, 403)),
        (f"/parks/{a}/kpi/history", (200, 200, 403, 403)),
        (f"/parks/{a}/enterprises/kpi", (200, 200, 403, 403)),
        (f"/enterprises/{e1}/kpi", (200, 200, 200, 403)),
        (f"/enterprises/{e1}/kpi/history", (200, 200, 200, 403)),
        (f"/enterprises/{e2}/kpi", (200, 200, 404, 403)),
        (f"/enterprises/{e2}/kpi/history?format=csv", (200, 200, 404, 403)),
        ("/kpi", (200, 200, 403, 403)),
        ("/kpi?format=csv", (200, 200, 403, 403)),
        ("/auth/me", (200, 200, 200, 200)),
        ("/admin/users", (403, 200, 403, 403)),
        ("/admin/keys", (403, 200, 403, 403)),
        ("/admin/registry", (403, 200, 403, 403)),
    ]


async def test_every_role_against_every_resource(serve: ServeFactory, uid: str) -> None:
    async with serve(scoped_registry(uid)) as api:
        failures = []
        for role in ROLES:
            enterprise = f"a{uid}-e1" if role == "enterprise" else None
            async with api.client(role, enterprise, prefix="/api/v1") as client:
                for path, expected in matrix(uid):
                    r = await client.get(path)
                    want = expected[ROLES.index(role)]
                    if r.status_code != want:
                        failures.append(f"{role} GET {path}: {r.status_code} (expected {want}) {r.text[:120]}")
                    elif want == 404:
                        assert r.json()["error"]["code"] == "not_found"
                        assert f"a{uid}-m2" not in r.text or "is not in the registry" in r.text
                    elif want == 403:
                        assert r.json()["error"]["code"] == "forbidden"
        assert not failures, "\n".join(failures)


async def test_lists_show_only_what_the_caller_may_see(serve: ServeFactory, uid: str) -> None:
    a = f"a{uid}"
    async with serve(scoped_registry(uid)) as api:
        async with api.client("enterprise", f"{a}-e1", prefix="/api/v1") as client:
            assert [p["id"] for p in (await client.get("/parks")).json()["items"]] == [a]
            ents = (await client.get(f"/parks/{a}/enterprises")).json()
            assert [e["id"] for e in ents["items"]] == [f"{a}-e1"] and ents["total"] == 1
            devices = (await client.get(f"/enterprises/{a}-e1/devices")).json()
            assert {d["id"] for d in devices["items"]} == {f"{a}-m1", f"{a}-gas1"}
        async with api.client("emergency", prefix="/api/v1") as client:
            assert (await client.get("/parks")).json()["total"] == 2
            devices = (await client.get(f"/enterprises/{a}-e2/devices")).json()
            assert [(d["id"], d["location"]) for d in devices["items"]] == [(f"{a}-fire2", "2 号车间")]
        async with api.client("operations", prefix="/api/v1") as client:
            devices = (await client.get(f"/enterprises/{a}-e2/devices", params={"limit": 1, "offset": 1})).json()
            assert devices["total"] == 2 and [d["id"] for d in devices["items"]] == [f"{a}-fire2"]


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Bearer sp_000000000000_forged", "Basic dXNlcjpwdw==",
                                    "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."])
async def test_every_versioned_route_needs_a_credential(serve: ServeFactory, uid: str, header: str | None) -> None:
    async with serve(scoped_registry(uid)) as api:
        headers = {"Authorization": header} if header else {}
        async with httpx.AsyncClient(base_url=api.url, headers=headers) as client:
            for path, _ in matrix(uid):
                r = await client.get("/api/v1" + path)
                assert r.status_code == 401, (path, r.status_code)
                assert r.json()["error"]["code"] == "unauthorized"
                assert r.headers["WWW-Authenticate"] == "Bearer"
            # Operations endpoints, the dashboard and the login stay public.
            for path in ("/metrics", "/", "/static/app.js", "/docs", "/openapi.json"):
                assert (await client.get(path)).status_code == 200, path
            assert (await client.get("/healthz")).status_code in (200, 503)
