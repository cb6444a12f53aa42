"""Registry editing by administrators: create, update and delete parks, enterprises, gateways and devices.

Each change is applied to the registry file's document, validated as a whole (`parse_registry`, as the YAML
is), written atomically and served at once (`api.registry_source`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request

from api.deps import AdminDep, IdPath
from api.errors import ApiError, ErrorCode, invalid, not_found
from api.models import DevicePublic, EnterprisePublic, ParkPublic
from api.registry_source import RegistrySource
from parkmodel.registry import Device, Enterprise, Gateway, Park, Registry, RegistryError

router = APIRouter(tags=["registry admin"])

CHILDREN = {"park": "enterprises", "enterprise": "gateways", "gateway": "devices", "device": None}
PARENT = {"enterprise": "park", "gateway": "enterprise", "device": "gateway"}
Patch = Annotated[dict[str, Any], Body(description="fields to change (not `id`, not child lists)")]
Cascade = Annotated[bool, Query(description="also delete everything below it")]


def _source(request: Request) -> RegistrySource:
    return request.app.state.registry_source  # type: ignore[no-any-return]


def _walk(data: dict[str, Any]) -> Iterator[tuple[str, list[Any], dict[str, Any]]]:
    """(kind, the list holding it, the item) for every item of the document, parents first."""
    def items(obj: Any, key: str) -> list[Any]:
        value = obj.get(key) if isinstance(obj, dict) else None
        return value if isinstance(value, list) else []

    for park in (parks := items(data, "parks")):
        yield "park", parks, park
        for ent in (ents := items(park, "enterprises")):
            yield "enterprise", ents, ent
            for gw in (gws := items(ent, "gateways")):
                yield "gateway", gws, gw
                for dev in (devs := items(gw, "devices")):
                    yield "device", devs, dev


def _find(data: dict[str, Any], kind: str, ident: str) -> tuple[list[Any], dict[str, Any]]:
    for k, holder, item in _walk(data):
        if k == kind and isinstance(item, dict) and item.get("id") == ident:
            return holder, item
    raise not_found(kind, ident)


async def _edit(request: Request, mutate: Callable[[dict[str, Any]], None]) -> Registry:
    try:
        return await _source(request).edit(mutate)
    except RegistryError as exc:
        raise invalid(str(exc)) from None


def _add(kind: str, parent_id: str | None, item: dict[str, Any], registry: Registry) -> Callable[[dict[str, Any]], None]:
    exists = {"park": registry.park, "enterprise": registry.enterprise, "gateway": registry.gateway,
              "device": registry.device}[kind]
    if exists(item["id"]) is not None:
        raise ApiError(ErrorCode.CONFLICT, f"{kind} id {item['id']!r} is already in use")

    def mutate(data: dict[str, Any]) -> None:
        if kind == "park":
            data.setdefault("parks", []).append(item)
            return
        assert parent_id is not None
        _, parent = _find(data, PARENT[kind], parent_id)
        children = parent.setdefault(CHILDREN[PARENT[kind]] or "", [])
        if not isinstance(children, list):
            raise invalid(f"{PARENT[kind]} {parent_id!r} has a malformed {CHILDREN[PARENT[kind]]} list")
        children.append(item)
    return mutate


def _update(kind: str, ident: str, patch: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    if "id" in patch and patch["id"] != ident:
        raise invalid("an id cannot be changed (history is stored under it); create a new one instead", "id")
    child_key = CHILDREN[kind]
    if child_key and child_key in patch:
        raise invalid(f"{child_key} are edited through their own routes, not in a {kind} update", child_key)

    def mutate(data: dict[str, Any]) -> None:
        _, item = _find(data, kind, ident)
        for key, value in patch.items():
            if value is None:
                item.pop(key, None)  # back to the default
            else:
                item[key] = value
    return mutate


def _delete(kind: str, ident: str, cascade: bool) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        holder, item = _find(data, kind, ident)
        child_key = CHILDREN[kind]
        if child_key and item.get(child_key) and not cascade:
            raise ApiError(ErrorCode.CONFLICT, f"{kind} {ident!r} still has {child_key}; delete them first or "
                           "pass cascade=true")
        holder.remove(item)
    return mutate


def _dump(model: Park | Enterprise | Gateway | Device) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_defaults=True) | {"id": model.id}


@router.get("/admin/registry")
def get_registry_document(access: AdminDep) -> dict[str, Any]:
    """The whole registry in force, as the YAML file holds it."""
    return access.registry.model_dump(mode="json")


@router.post("/parks", status_code=201)
async def create_park(body: Park, access: AdminDep, request: Request) -> ParkPublic:
    registry = await _edit(request, _add("park", None, _dump(body), access.registry))
    park = registry.park(body.id)
    assert park is not None
    return ParkPublic.of(park)


@router.patch("/parks/{park_id}")
async def update_park(park_id: Annotated[str, IdPath], patch: Patch, access: AdminDep, request: Request) -> ParkPublic:
    registry = await _edit(request, _update("park", park_id, patch))
    park = registry.park(park_id)
    assert park is not None
    return ParkPublic.of(park)


@router.delete("/parks/{park_id}", status_code=204)
async def delete_park(park_id: Annotated[str, IdPath], access: AdminDep, request: Request,
                      cascade: Cascade = False) -> None:
    await _edit(request, _delete("park", park_id, cascade))


@router.post("/parks/{park_id}/enterprises", status_code=201)
async def create_enterprise(park_id: Annotated[str, IdPath], body: Enterprise, access: AdminDep,
                            request: Request) -> EnterprisePublic:
    registry = await _edit(request, _add("enterprise", park_id, _dump(body), access.registry))
    found = registry.enterprise(body.id)
    assert found is not None
    return EnterprisePublic.of(*found)


@router.patch("/enterprises/{enterprise_id}")
async def update_enterprise(enterprise_id: Annotated[str, IdPath], patch: Patch, access: AdminDep,
                            request: Request) -> EnterprisePublic:
    registry = await _edit(request, _update("enterprise", enterprise_id, patch))
    found = registry.enterprise(enterprise_id)
    assert found is not None
    return EnterprisePublic.of(*found)


@router.delete("/enterprises/{enterprise_id}", status_code=204)
async def delete_enterprise(enterprise_id: Annotated[str, IdPath], access: AdminDep, request: Request,
                            cascade: Cascade = False) -> None:
    await _edit(request, _delete("enterprise", enterprise_id, cascade))


@router.post("/enterprises/{enterprise_id}/gateways", status_code=201)
async def create_gateway(enterprise_id: Annotated[str, IdPath], body: Gateway, access: AdminDep,
                         request: Request) -> dict[str, Any]:
    registry = await _edit(request, _add("gateway", enterprise_id, _dump(body), access.registry))
    found = registry.gateway(body.id)
    assert found is not None
    return {"id": body.id, "park": found[0].id, "enterprise": found[1].id, **found[2].model_dump(mode="json")}


@router.patch("/gateways/{gateway_id}")
async def update_gateway(gateway_id: Annotated[str, IdPath], patch: Patch, access: AdminDep,
                         request: Request) -> dict[str, Any]:
    registry = await _edit(request, _update("gateway", gateway_id, patch))
    found = registry.gateway(gateway_id)
    assert found is not None
    return {"park": found[0].id, "enterprise": found[1].id, **found[2].model_dump(mode="json")}


@router.delete("/gateways/{gateway_id}", status_code=204)
async def delete_gateway(gateway_id: Annotated[str, IdPath], access: AdminDep, request: Request,
                         cascade: Cascade = False) -> None:
    await _edit(request, _delete("gateway", gateway_id, cascade))


@router.post("/gateways/{gateway_id}/devices", status_code=201)
async def create_device(gateway_id: Annotated[str, IdPath], body: Device, access: AdminDep,
                        request: Request) -> DevicePublic:
    registry = await _edit(request, _add("device", gateway_id, _dump(body), access.registry))
    ref = registry.device(body.id)
    assert ref is not None
    return DevicePublic.of(ref)


@router.patch("/devices/{device_id}")
async def update_device(device_id: Annotated[str, IdPath], patch: Patch, access: AdminDep,
                        request: Request) -> DevicePublic:
    registry = await _edit(request, _update("device", device_id, patch))
    ref = registry.device(device_id)
    assert ref is not None
    return DevicePublic.of(ref)


@router.delete("/devices/{device_id}", status_code=204)
async def delete_device(device_id: Annotated[str, IdPath], access: AdminDep, request: Request) -> None:
    await _edit(request, _delete("device", device_id, cascade=False))
