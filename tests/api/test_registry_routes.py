"""Registry routes, paging and JSON errors, against the real app served by uvicorn."""

from __future__ import annotations

from parkmodel.registry import load_registry
from tests.api.conftest import ServeFactory
from tests.conftest import make_registry


async def test_registry_routes_and_paging(serve: ServeFactory, uid: str) -> None:
    registry = make_registry(uid, enterprises=3)
    async with serve(registry) as api, api.client(prefix="/api/v1") as client:
        parks = (await client.get("/parks")).json()
        assert parks["total"] == 1 and parks["items"][0]["id"] == f"p{uid}"
        assert parks["items"][0]["device_count"] == 2

        park = (await client.get(f"/parks/p{uid}")).json()
        assert park["name"] == "测试园区" and park["enterprise_count"] == 3

        page = (await client.get(f"/parks/p{uid}/enterprises", params={"limit": 2, "offset": 1})).json()
        assert [e["id"] for e in page["items"]] == [f"e{uid}-1", f"e{uid}-2"]
        assert (page["total"], page["limit"], page["offset"]) == (3, 2, 1)

        ent = (await client.get(f"/enterprises/e{uid}-0")).json()
        assert ent["park"] == f"p{uid}" and ent["land_area_mu"] == 100 and ent["gateways"] == [f"g{uid}-0"]

        devices = (await client.get(f"/enterprises/e{uid}-0/devices")).json()
        assert {d["id"]: d["role"] for d in devices["items"]} == {f"m{uid}": "grid_meter", f"pv{uid}": "pv"}

        device = (await client.get(f"/devices/pv{uid}")).json()
        assert device["gateway"] == f"g{uid}-0" and device["rated_kw"] == 100


async def test_errors_are_json_with_stable_codes(serve: ServeFactory, uid: str) -> None:
    async with serve(make_registry(uid)) as api, api.client() as client:
        for path in (f"/api/v1/parks/nope{uid}", f"/api/v1/enterprises/nope{uid}", f"/api/v1/devices/nope{uid}",
                     f"/api/v1/devices/nope{uid}/latest", f"/api/v1/parks/nope{uid}/kpi", "/api/v1/nothing-here"):
            r = await client.get(path)
            assert r.status_code == 404, path
            assert r.json()["error"]["code"] == "not_found", path

        r = await client.get("/api/v1/parks/BAD!id")
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
        r = await client.get("/api/v1/parks", params={"limit": 0})
        assert r.status_code == 422 and "limit" in r.json()["error"]["message"]


async def test_full_registry_lists_eight_parks(serve: ServeFactory) -> None:
    async with serve(load_registry()) as api, api.client() as client:
        parks = (await client.get("/api/v1/parks")).json()
        assert parks["total"] == 8
        zero = next(p for p in parks["items"] if any(t["ratio"] == 0.8 for t in p["new_energy_targets"]))
        assert {t["year"] for t in zero["new_energy_targets"]} == {2023, 2025}
