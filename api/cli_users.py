"""`smartpark users ...` and `smartpark keys ...`: accounts and API keys in `{var_dir}/auth.sqlite`.

Passwords are read from a hidden prompt or stdin (`--password-stdin`), never from the command line, so they do
not end up in shell history or process lists. A new API key is printed once, alone on the last line.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from api.auth.store import AuthStore, AuthStoreError
from parkmodel.registry import RegistryError, load_registry
from smartpark.config import ConfigError, Settings, load_settings

users_app = typer.Typer(help="Dashboard and API users (username + password).", no_args_is_help=True,
                        pretty_exceptions_enable=False)
keys_app = typer.Typer(help="API keys for machines and gateways (Authorization: Bearer KEY).", no_args_is_help=True,
                       pretty_exceptions_enable=False)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML configuration file")]
RoleOpt = Annotated[str, typer.Option(help="operations | enterprise | emergency | admin")]
EnterpriseOpt = Annotated[str | None, typer.Option(help="enterprise id (role enterprise only)")]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def _store(settings: Settings) -> AuthStore:
    return AuthStore(Path(settings.var_dir) / "auth.sqlite")


def _check_enterprise(settings: Settings, enterprise: str | None) -> None:
    if enterprise is None:
        return
    try:
        registry = load_registry(settings.registry)
    except RegistryError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if registry.enterprise(enterprise) is None:
        typer.echo(f"enterprise {enterprise!r} is not in the registry {settings.registry}", err=True)
        raise typer.Exit(2)


def _when(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="login name (lower case)")],
    role: RoleOpt,
    enterprise: EnterpriseOpt = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
    config: ConfigOpt = None,
) -> None:
    """Create a user; the password is asked for (hidden) or read from stdin."""
    settings = _settings(config)
    _check_enterprise(settings, enterprise)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        info = _store(settings).create_user(username, password, role, enterprise)
    except AuthStoreError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"created user {info.username} ({info.role.value}{' ' + info.enterprise if info.enterprise else ''})")


@users_app.command("list")
def users_list(config: ConfigOpt = None) -> None:
    """List users (revoked ones marked)."""
    for u in _store(_settings(config)).list_users():
        state = f"revoked {_when(u.revoked_at)}" if u.revoked_at else "active"
        typer.echo(f"{u.username}\t{u.role.value}\t{u.enterprise or '-'}\tcreated {_when(u.created_at)}\t{state}")


@users_app.command("revoke")
def users_revoke(username: Annotated[str, typer.Argument()], config: ConfigOpt = None) -> None:
    """Revoke a user; their session tokens stop working at once."""
    try:
        _store(_settings(config)).revoke_user(username)
    except AuthStoreError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"revoked user {username}")


@keys_app.command("create")
def keys_create(
    role: RoleOpt,
    enterprise: EnterpriseOpt = None,
    name: Annotated[str | None, typer.Option(help="what the key is for (default: role and enterprise)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Create an API key; the key is printed once, alone on the last line."""
    settings = _settings(config)
    _check_enterprise(settings, enterprise)
    try:
        info, plain = _store(settings).create_key(name or f"{role}{'-' + enterprise if enterprise else ''}", role,
                                                  enterprise)
    except AuthStoreError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"created key {info.id} ({info.role.value}{' ' + info.enterprise if info.enterprise else ''}); "
               "store it now, it is not shown again:")
    typer.echo(plain)


@keys_app.command("list")
def keys_list(config: ConfigOpt = None) -> None:
    """List API keys (ids and names, never the keys)."""
    for k in _store(_settings(config)).list_keys():
        state = f"revoked {_when(k.revoked_at)}" if k.revoked_at else "active"
        typer.echo(f"{k.id}\t{k.name}\t{k.role.value}\t{k.enterprise or '-'}\tcreated {_when(k.created_at)}\t{state}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="key id (from `keys list`)")],
                config: ConfigOpt = None) -> None:
    """Revoke an API key at once."""
    try:
        _store(_settings(config)).revoke_key(key_id)
    except AuthStoreError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"revoked key {key_id}")
