"""Registry editing through the API: validated as a whole, written atomically to the file, served at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from parkmodel.registry import load_registry
from tests.api.conftest import ServeFactory
from tests.api.scoped import scoped_registry


async def test_admin_edits_the_registry_file_and_the_api_follows(serve: ServeFactory, uid: str) -> None:
    a = f"a{uid}"
    async with serve(scoped_registry(uid)) as api, api.client("admin", prefix="/api/v1") as admin:
        path = Path(api.settings.registry)
        r = await admin.post("/parks", json={"id": f"c{uid}", "name": "丙园区", "name_en": "Park C"})
        assert r.status_code == 201 and r.json()["enterprise_count"] == 0
        r = await admin.post(f"/parks/c{uid}/enterprises", json={"id": f"c{uid}-e1", "name": "新企业",
                                                                  "land_area_mu": 12.5})
        assert r.status_code == 201 and r.json()["park"] == f"c{uid}"
        r = await admin.post(f"/enterprises/c{uid}-e1/gateways", json={"id": f"c{uid}-g1"})
        assert r.status_code == 201
        r = await admin.post(f"/gateways/c{uid}-g1/devices", json={"id": f"c{uid}-m1", "role": "grid_meter",
                                                                   "template": "acrel_dtsd1352"})
        assert r.status_code == 201 and r.json()["enterprise"] == f"c{uid}-e1"
        r = await admin.patch(f"/devices/c{uid}-m1", json={"name": "总表", "rated_kw": 500})
        assert r.status_code == 200 and r.json()["name"] == "总表" and r.json()["rated_kw"] == 500
        r = await admin.patch(f"/enterprises/c{uid}-e1", json={"contracted_capacity_kw": 630})
        assert r.json()["contracted_capacity_kw"] == 630

        # The file is the source: it holds every change and loads as a valid registry.
        on_disk = load_registry(path)
        assert on_disk.device(f"c{uid}-m1") is not None and on_disk.device(f"c{uid}-m1").device.name == "总表"
        # The running API serves it at once, to every role as scoped.
        async with api.client("operations", prefix="/api/v1") as ops:
            assert (await ops.get(f"/devices/c{uid}-m1")).json()["rated_kw"] == 500
        async with api.client("enterprise", f"c{uid}-e1", prefix="/api/v1") as ent:
            assert (await ent.get(f"/enterprises/c{uid}-e1/devices")).json()["total"] == 1

        # Invalid changes are refused whole and leave the file untouched.
        before = path.read_bytes()  # noqa: ASYNC240
        bad = [
            ("post", f"/gateways/c{uid}-g1/devices", {"id": f"x{uid}", "role": "grid_meter", "template": "t",
                                                      "parent": f"nope{uid}"}, 422),
            ("post", f"/gateways/c{uid}-g1/devices", {"id": f"{a}-m1", "role": "pv", "template": "t"}, 409),
            ("post", "/parks", {"id": "BAD ID", "name": "x"}, 422),
            ("patch", f"/enterprises/c{uid}-e1", {"land_area_mu": -1}, 422),
            ("patch", f"/enterprises/c{uid}-e1", {"id": "other"}, 422),
            ("patch", f"/parks/c{uid}", {"enterprises": []}, 422),
            ("patch", f"/devices/c{uid}-m1", {"role": "toaster"}, 422),
            ("patch", f"/devices/zz{uid}", {"name": "x"}, 404),
            ("delete", f"/parks/c{uid}", None, 409),  # still has enterprises
        ]
        for method, url, body, status in bad:
            r = await admin.request(method.upper(), url, json=body)
            assert r.status_code == status, (method, url, r.text)
            assert "error" in r.json()
        assert path.read_bytes() == before  # noqa: ASYNC240
        assert not list(path.parent.glob(".*.tmp"))

        assert (await admin.delete(f"/devices/c{uid}-m1")).status_code == 204
        assert (await admin.delete(f"/parks/c{uid}", params={"cascade": "true"})).status_code == 204
        assert (await admin.get(f"/parks/c{uid}")).status_code == 404
        assert yaml.safe_load(path.read_text())["parks"][-1]["id"] == f"b{uid}"  # noqa: ASYNC240

        async with api.client("operations", prefix="/api/v1") as ops:
            r = await ops.post("/parks", json={"id": f"d{uid}", "name": "x"})
            assert r.status_code == 403


async def test_a_file_changed_elsewhere_is_picked_up(serve: ServeFactory, uid: str) -> None:

    async with serve(scoped_registry(uid)) as api, api.client(prefix="/api/v1") as client:
        path = Path(api.settings.registry)
        data = yaml.safe_load(path.read_text())  # noqa: ASYNC240
        data["parks"][0]["name"] = "改名园区"
        path.write_text(yaml.safe_dump(data, allow_unicode=True))  # noqa: ASYNC240
        for _ in range(30):
            if (await client.get(f"/parks/a{uid}")).json()["name"] == "改名园区":
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the edited file was not picked up")
        path.write_text("parks: [{id: 'BROKEN'}]")  # an invalid edit keeps the last good registry  # noqa: ASYNC240
        await asyncio.sleep(1.2)
        assert (await client.get(f"/parks/a{uid}")).json()["name"] == "改名园区"
