"""The demo's accounts: one login per role with fresh passwords each start, and a key for the status line."""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from api.app import auth_store_path
from api.auth.store import AuthStore, AuthStoreError
from parkmodel.registry import Registry
from smartpark.config import Settings


@dataclass(frozen=True, slots=True)
class DemoLogin:
    username: str
    password: str
    role: str
    enterprise: str | None


def demo_logins(settings: Settings, registry: Registry) -> list[DemoLogin]:
    """Create (or reset) one user per role; the enterprise user belongs to the registry's first enterprise."""
    store = AuthStore(auth_store_path(settings))
    first_enterprise = next((e.id for p in registry.parks for e in p.enterprises), None)
    wanted = [("admin", "admin", None), ("ops", "operations", None), ("emergency", "emergency", None)]
    if first_enterprise is not None:
        wanted.append((first_enterprise, "enterprise", first_enterprise))
    existing = {u.username: u for u in store.list_users(include_revoked=False)}
    logins = []
    for username, role, enterprise in wanted:
        password = secrets.token_urlsafe(9)
        user = existing.get(username)
        if user is not None and user.role.value == role and user.enterprise == enterprise:
            store.set_password(username, password)
        else:
            if user is not None:
                store.revoke_user(username)
            try:
                store.create_user(username, password, role, enterprise)
            except AuthStoreError:  # a revoked user of that name: keep the name free, use a suffixed one
                username = f"{username}-{secrets.token_hex(2)}"
                store.create_user(username, password, role, enterprise)
        logins.append(DemoLogin(username, password, role, enterprise))
    return logins


STATUS_KEY_NAME = "demo-status"


def status_key(settings: Settings) -> tuple[str, str]:
    """A fresh operations key for the demo's own status line; returns `(key id, key)`.

    Keys of this name left by an earlier demo that was killed before it could revoke its own are revoked
    first (one demo runs per folder, so none of them is in use).
    """
    store = AuthStore(auth_store_path(settings))
    for old in store.list_keys(include_revoked=False):
        if old.name == STATUS_KEY_NAME:
            store.revoke_key(old.id)
    info, key = store.create_key(STATUS_KEY_NAME, "operations")
    return info.id, key


def revoke_status_key(settings: Settings, key_id: str) -> None:
    """Revoke the status line's key when the demo stops (an unknown key is already gone: nothing to do)."""
    with contextlib.suppress(AuthStoreError):
        AuthStore(auth_store_path(settings)).revoke_key(key_id)


def write_logins(path: Path, logins: list[DemoLogin]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for login in logins:
            f.write(f"{login.role:<11} {login.username:<16} {login.password}\n")


def format_logins(logins: list[DemoLogin]) -> str:
    lines = ["  role 角色     user 用户名        password 密码"]
    for login in logins:
        lines.append(f"  {login.role:<11} {login.username:<16} {login.password}")
    return "\n".join(lines)
