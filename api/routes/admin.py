"""Administration of accounts: users and API keys (administrators only)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path

from api.auth.store import AuthStoreError, KeyInfo, UserInfo
from api.deps import AdminDep, AuthDep, PageDep
from api.errors import ApiError, ErrorCode, invalid, not_found
from api.models import KeyCreate, KeyCreated, KeyPublic, PageOf, UserCreate, UserPublic
from parkmodel.registry import Registry

router = APIRouter(prefix="/admin", tags=["admin"])
UsernamePath = Path(max_length=64, description="username")
KeyIdPath = Path(pattern=r"^[0-9a-f]{12}$", description="key id")


def _user(u: UserInfo) -> UserPublic:
    return UserPublic(username=u.username, role=u.role.value, enterprise=u.enterprise, created_at=u.created_at,
                      revoked_at=u.revoked_at)


def _key(k: KeyInfo) -> KeyPublic:
    return KeyPublic(id=k.id, name=k.name, role=k.role.value, enterprise=k.enterprise, created_at=k.created_at,
                     revoked_at=k.revoked_at)


def _check_enterprise(registry: Registry, enterprise: str | None) -> None:
    if enterprise is not None and registry.enterprise(enterprise) is None:
        raise invalid(f"enterprise {enterprise[:64]!r} is not in the registry", "enterprise")


@router.get("/users")
async def list_users(access: AdminDep, auth: AuthDep, page: PageDep) -> PageOf[UserPublic]:
    users = [_user(u) for u in await asyncio.to_thread(auth.store.list_users)]
    return PageOf[UserPublic](items=page.slice(users), total=len(users), limit=page.limit, offset=page.offset)


@router.post("/users", status_code=201)
async def create_user(body: UserCreate, access: AdminDep, auth: AuthDep) -> UserPublic:
    _check_enterprise(access.registry, body.enterprise)
    try:
        info = await asyncio.to_thread(auth.store.create_user, body.username, body.password, body.role,
                                       body.enterprise)
    except AuthStoreError as exc:
        code = ErrorCode.CONFLICT if "exists already" in str(exc) else ErrorCode.INVALID_REQUEST
        raise ApiError(code, str(exc)) from None
    return _user(info)


@router.delete("/users/{username}")
async def revoke_user(username: Annotated[str, UsernamePath], access: AdminDep, auth: AuthDep) -> UserPublic:
    """Revoke a user: their session tokens stop working at once."""
    try:
        return _user(await asyncio.to_thread(auth.store.revoke_user, username))
    except AuthStoreError:
        raise not_found("user", username) from None


@router.get("/keys")
async def list_keys(access: AdminDep, auth: AuthDep, page: PageDep) -> PageOf[KeyPublic]:
    keys = [_key(k) for k in await asyncio.to_thread(auth.store.list_keys)]
    return PageOf[KeyPublic](items=page.slice(keys), total=len(keys), limit=page.limit, offset=page.offset)


@router.post("/keys", status_code=201)
async def create_key(body: KeyCreate, access: AdminDep, auth: AuthDep) -> KeyCreated:
    """A new API key; the key itself is in this answer only."""
    _check_enterprise(access.registry, body.enterprise)
    try:
        info, plain = await asyncio.to_thread(auth.store.create_key, body.name, body.role, body.enterprise)
    except AuthStoreError as exc:
        raise invalid(str(exc)) from None
    return KeyCreated(**_key(info).model_dump(), key=plain)


@router.delete("/keys/{key_id}")
async def revoke_key(key_id: Annotated[str, KeyIdPath], access: AdminDep, auth: AuthDep) -> KeyPublic:
    try:
        return _key(await asyncio.to_thread(auth.store.revoke_key, key_id))
    except AuthStoreError:
        raise not_found("key", key_id) from None
