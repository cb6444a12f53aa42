"""Logins, tokens, API keys, revocation, the login rate limit, admin account routes and the CLI."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from api.auth.principal import Principal, Role
from api.auth.ratelimit import LoginLimiter
from api.auth.store import AuthStore, AuthStoreError
from api.auth.tokens import issue_token, read_token
from api.cli_users import keys_app, users_app
from tests.api.conftest import ServeFactory, write_registry
from tests.api.scoped import scoped_registry


def test_store_hashes_secrets_and_checks_roles(tmp_path: Path) -> None:
    store = AuthStore(tmp_path / "auth.sqlite")
    store.create_user("alice", "correct horse", "operations")
    _, key = store.create_key("gw-1", "enterprise", "e-1")
    raw = (tmp_path / "auth.sqlite").read_bytes()
    assert b"correct horse" not in raw and key.encode() not in raw
    assert store.authenticate("alice", "correct horse") == Principal("user", "alice", Role.OPERATIONS)
    assert store.authenticate("alice", "wrong password") is None
    assert store.authenticate("nobody", "correct horse") is None
    assert store.verify_key(key) == Principal("key", key.split("_")[1], Role.ENTERPRISE, "e-1")
    assert store.verify_key(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    for bad in (("Bob", "password1", "operations", None), ("bob", "short", "operations", None),
                ("bob", "password1", "enterprise", None), ("bob", "password1", "admin", "e-1"),
                ("bob", "password1", "root", None), ("alice", "password1", "admin", None)):
        with pytest.raises(AuthStoreError):
            store.create_user(*bad)


def test_tokens_expire_and_need_the_secret() -> None:
    p = Principal("user", "alice", Role.ENTERPRISE, "e-1")
    token = issue_token(p, "s" * 64, ttl_s=60)
    assert read_token(token, "s" * 64) == p
    assert read_token(token, "t" * 64) is None
    assert read_token(issue_token(p, "s" * 64, ttl_s=60, now=time.time() - 120), "s" * 64) is None


def test_limiter_allows_five_failures_a_minute() -> None:
    limiter = LoginLimiter(max_failures=5, window_s=60)
    for i in range(5):
        assert limiter.retry_after("u", "1.2.3.4", now=100 + i) == 0
        limiter.failed("u", "1.2.3.4", now=100 + i)
    assert limiter.retry_after("u", "1.2.3.4", now=105) == pytest.approx(55)
    assert limiter.retry_after("u", "5.6.7.8", now=105) == 0  # another address
    assert limiter.retry_after("v", "1.2.3.4", now=105) == 0  # another user
    assert limiter.retry_after("u", "1.2.3.4", now=160.5) == 0  # the oldest failure left the window


async def test_login_token_revocation_and_rate_limit(serve: ServeFactory, uid: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    password = f"pw-{uid}-secret"
    async with serve(scoped_registry(uid)) as api, httpx.AsyncClient(base_url=api.url + "/api/v1") as client:
        api.store.create_user("ent1", password, "enterprise", f"a{uid}-e1")
        r = await client.post("/auth/login", json={"username": "ent1", "password": password})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["role"], body["enterprise"], body["expires_in"], body["token_type"]) == (
            "enterprise", f"a{uid}-e1", 3600, "bearer")
        auth = {"Authorization": f"Bearer {body['access_token']}"}
        me = (await client.get("/auth/me", headers=auth)).json()
        assert me == {"kind": "user", "subject": "ent1", "role": "enterprise", "enterprise": f"a{uid}-e1"}
        assert (await client.get(f"/enterprises/a{uid}-e2", headers=auth)).status_code == 404

        # Five failures from one address lock that username out for a minute, even with the right password.
        for _ in range(5):
            r = await client.post("/auth/login", json={"username": "ent1", "password": "wrong-password"})
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = await client.post("/auth/login", json={"username": "ent1", "password": password})
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert (await client.post("/auth/login", json={"username": "nobody", "password": "x"})).status_code == 401

        # Revoking the user ends its token at once.
        admin = api.headers("admin")
        r = await client.delete("/admin/users/ent1", headers=admin)
        assert r.status_code == 200 and r.json()["revoked_at"] is not None
        assert (await client.get("/auth/me", headers=auth)).status_code == 401

        # A token signed with another secret, and a token past its lifetime, are refused.
        forged = issue_token(Principal("user", "ent1", Role.ADMIN), "not-the-secret-" * 4)
        assert (await client.get("/auth/me", headers={"Authorization": f"Bearer {forged}"})).status_code == 401
        api.store.create_user("ops1", password, "operations")
        old = issue_token(Principal("user", "ops1", Role.OPERATIONS), api.store.token_secret(), 60,
                          now=time.time() - 3600)
        assert (await client.get("/auth/me", headers={"Authorization": f"Bearer {old}"})).status_code == 401
    logged = caplog.text
    assert password not in logged and body["access_token"] not in logged and api.key("admin") not in logged
    assert "login failed for user 'ent1'" in logged


async def test_admin_manages_users_and_keys(serve: ServeFactory, uid: str) -> None:
    e1 = f"a{uid}-e1"
    async with serve(scoped_registry(uid)) as api, api.client("admin", prefix="/api/v1") as admin:
        r = await admin.post("/admin/users", json={"username": "em1", "password": "emergency-pw", "role": "emergency"})
        assert r.status_code == 201 and r.json()["role"] == "emergency"
        assert (await admin.post("/admin/users", json={"username": "em1", "password": "emergency-pw",
                                                       "role": "emergency"})).status_code == 409
        r = await admin.post("/admin/users", json={"username": "x1", "password": "longenough", "role": "enterprise",
                                                   "enterprise": f"zz{uid}"})
        assert r.status_code == 422 and r.json()["error"]["details"]["param"] == "enterprise"
        users = (await admin.get("/admin/users", params={"limit": 10})).json()
        assert [u["username"] for u in users["items"]] == ["em1"]

        r = await admin.post("/admin/keys", json={"name": "gateway a1", "role": "enterprise", "enterprise": e1})
        assert r.status_code == 201
        created = r.json()
        async with httpx.AsyncClient(base_url=api.url + "/api/v1",
                                     headers={"Authorization": f"Bearer {created['key']}"}) as gw:
            assert (await gw.get(f"/enterprises/{e1}")).status_code == 200
            keys = (await admin.get("/admin/keys")).json()
            assert created["id"] in {k["id"] for k in keys["items"]}
            assert all("key" not in k for k in keys["items"])
            assert (await gw.get("/admin/keys")).status_code == 403
            assert (await admin.delete(f"/admin/keys/{created['id']}")).status_code == 200
            assert (await gw.get(f"/enterprises/{e1}")).status_code == 401
        assert (await admin.delete("/admin/keys/000000000000")).status_code == 404
        async with api.client("operations", prefix="/api/v1") as ops:
            r = await ops.post("/admin/users", json={"username": "x2", "password": "longenough", "role": "admin"})
            assert r.status_code == 403


async def test_bootstrap_admin_can_log_in(serve: ServeFactory, uid: str) -> None:
    async with serve(scoped_registry(uid), bootstrap_admin=("root", "bootstrap-pw")) as api, \
            httpx.AsyncClient(base_url=api.url + "/api/v1") as client:
        r = await client.post("/auth/login", json={"username": "root", "password": "bootstrap-pw"})
        assert r.status_code == 200 and r.json()["role"] == "admin"


def test_cli_creates_lists_and_revokes(tmp_path: Path, uid: str) -> None:
    registry_path = tmp_path / "registry.yaml"
    write_registry(scoped_registry(uid), registry_path)
    config = tmp_path / "smartpark.yaml"
    config.write_text(f"var_dir: {tmp_path / 'var'}\nregistry: {registry_path}\n")
    runner = CliRunner()
    result = runner.invoke(keys_app, ["create", "--role", "enterprise", "--enterprise", f"a{uid}-e1",
                                      "--config", str(config)])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    store = AuthStore(tmp_path / "var" / "auth.sqlite")
    principal = store.verify_key(key)
    assert principal is not None and principal.enterprise == f"a{uid}-e1"
    listed = runner.invoke(keys_app, ["list", "--config", str(config)])
    assert principal.subject in listed.output and key not in listed.output
    assert runner.invoke(keys_app, ["revoke", principal.subject, "--config", str(config)]).exit_code == 0
    assert store.verify_key(key) is None
    bad = runner.invoke(keys_app, ["create", "--role", "enterprise", "--enterprise", "nope", "--config", str(config)])
    assert bad.exit_code == 2 and "not in the registry" in bad.output

    result = runner.invoke(users_app, ["create", "op1", "--role", "operations", "--password-stdin",
                                       "--config", str(config)], input="op1-password\n")
    assert result.exit_code == 0, result.output
    assert store.authenticate("op1", "op1-password") is not None
    assert "op1\toperations" in runner.invoke(users_app, ["list", "--config", str(config)]).output
    assert runner.invoke(users_app, ["revoke", "op1", "--config", str(config)]).exit_code == 0
    assert store.authenticate("op1", "op1-password") is None
    assert runner.invoke(users_app, ["revoke", "ghost", "--config", str(config)]).exit_code == 1
