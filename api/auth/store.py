"""Accounts and API keys in the platform's own SQLite file (`{var_dir}/auth.sqlite`), secrets stored hashed.

Passwords are hashed with scrypt (slow on purpose); API keys are 256-bit random strings, so a SHA-256 of the
key is enough to store them and is fast to check on every request. The file also keeps the token signing
secret, so every API instance sharing the file accepts the others' tokens.

Every method opens its own short connection, so the store can be used from worker threads
(`asyncio.to_thread`) without sharing a connection between them.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from api.auth.passwords import DUMMY_HASH, MAX_PASSWORD, MIN_PASSWORD, hash_password, verify_password
from api.auth.principal import Principal, Role
from parkmodel.ids import is_valid_id

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.@-]{0,63}$")
KEY_PREFIX = "sp"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    enterprise TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    enterprise TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class AuthStoreError(ValueError):
    """A request the store refuses (bad name, weak password, duplicate, unknown account); says why."""


@dataclass(frozen=True, slots=True)
class UserInfo:
    username: str
    role: Role
    enterprise: str | None
    created_at: int
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    name: str
    role: Role
    enterprise: str | None
    created_at: int
    revoked_at: int | None


def _now_ms() -> int:
    return int(time.time() * 1000)


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _check_role(role: Role | str, enterprise: str | None) -> Role:
    try:
        checked = Role(role)
    except ValueError:
        raise AuthStoreError(f"unknown role {role!r}; expected one of {', '.join(r.value for r in Role)}") from None
    if checked is Role.ENTERPRISE:
        if enterprise is None:
            raise AuthStoreError("role 'enterprise' needs an enterprise id (--enterprise)")
        if not is_valid_id(enterprise):
            raise AuthStoreError(f"enterprise id {enterprise!r} is not a valid id")
    elif enterprise is not None:
        raise AuthStoreError(f"only role 'enterprise' is bound to an enterprise, not {checked.value!r}")
    return checked


class AuthStore:
    """Users and API keys in one SQLite file (created on first use).

    Args:
        path: the SQLite file, e.g. `{settings.var_dir}/auth.sqlite`.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta(name, value) VALUES ('token_secret', ?)",
                       (secrets.token_hex(32),))
        with contextlib.suppress(OSError):
            self.path.chmod(0o600)  # hashes and the signing secret: owner only

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=10000")
            with db:
                yield db
        finally:
            db.close()

    def token_secret(self) -> str:
        """The HMAC secret signing session tokens (generated once per store)."""
        with self._connect() as db:
            row = db.execute("SELECT value FROM meta WHERE name = 'token_secret'").fetchone()
        return str(row[0])

    # ---- users ---------------------------------------------------------------------------------------
    def create_user(self, username: str, password: str, role: Role | str, enterprise: str | None = None) -> UserInfo:
        """Add a user with a hashed password.

        Args:
            username: lower-case login name (letters, digits, `_.@-`, up to 64).
            password: at least 8 characters.
            role: operations, enterprise, emergency or admin.
            enterprise: the enterprise id, for role `enterprise` only.

        Raises:
            AuthStoreError: bad name, weak password, bad role/enterprise pair, or the name is taken.
        """
        if not USERNAME_RE.match(username):
            raise AuthStoreError(f"username {username!r} must be lower-case letters, digits or _.@- (up to 64)")
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise AuthStoreError(f"the password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")
        checked = _check_role(role, enterprise)
        info = UserInfo(username, checked, enterprise, _now_ms(), None)
        try:
            with self._connect() as db:
                db.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, NULL)",
                           (username, hash_password(password), checked.value, enterprise, info.created_at))
        except sqlite3.IntegrityError:
            raise AuthStoreError(f"user {username!r} exists already") from None
        return info

    def set_password(self, username: str, password: str) -> None:
        """Replace an active user's password (their existing tokens stay valid until they expire).

        Raises:
            AuthStoreError: weak password, or no such active user.
        """
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise AuthStoreError(f"the password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")
        with self._connect() as db:
            changed = db.execute("UPDATE users SET password_hash = ? WHERE username = ? AND revoked_at IS NULL",
                                 (hash_password(password), username)).rowcount
        if not changed:
            raise AuthStoreError(f"no active user {username!r}")

    def list_users(self, include_revoked: bool = True) -> list[UserInfo]:
        query = "SELECT username, role, enterprise, created_at, revoked_at FROM users"
        if not include_revoked:
            query += " WHERE revoked_at IS NULL"
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY username").fetchall()
        return [UserInfo(r[0], Role(r[1]), r[2], r[3], r[4]) for r in rows]

    def revoke_user(self, username: str) -> UserInfo:
        """Disable a user; their tokens stop working at the next request.

        Raises:
            AuthStoreError: no such user.
        """
        with self._connect() as db:
            db.execute("UPDATE users SET revoked_at = ? WHERE username = ? AND revoked_at IS NULL",
                       (_now_ms(), username))
        for user in self.list_users():
            if user.username == username:
                return user
        raise AuthStoreError(f"no user {username!r}")

    def authenticate(self, username: str, password: str) -> Principal | None:
        """The principal of an active user whose password matches, else None (same work either way)."""
        with self._connect() as db:
            row = db.execute("SELECT password_hash, role, enterprise FROM users "
                             "WHERE username = ? AND revoked_at IS NULL", (username,)).fetchone()
        if row is None:
            verify_password(password, DUMMY_HASH)
            return None
        if not verify_password(password, row[0]):
            return None
        return Principal("user", username, Role(row[1]), row[2])

    def active_user(self, username: str) -> Principal | None:
        """The principal of a user that is not revoked (checked on every token use)."""
        with self._connect() as db:
            row = db.execute("SELECT role, enterprise FROM users WHERE username = ? AND revoked_at IS NULL",
                             (username,)).fetchone()
        return None if row is None else Principal("user", username, Role(row[0]), row[1])

    # ---- API keys ------------------------------------------------------------------------------------
    def create_key(self, name: str, role: Role | str, enterprise: str | None = None) -> tuple[KeyInfo, str]:
        """A new API key; the plain key is returned once and never stored.

        Args:
            name: what the key is for (e.g. the gateway or machine), up to 200 characters.
            role: operations, enterprise, emergency or admin.
            enterprise: the enterprise id, for role `enterprise` only.

        Returns:
            The key's record and the key itself (`sp_<id>_<secret>`), for `Authorization: Bearer <key>`.
        """
        if not 1 <= len(name) <= 200:
            raise AuthStoreError("a key name must have 1 to 200 characters")
        checked = _check_role(role, enterprise)
        key_id = secrets.token_hex(6)
        plain = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        info = KeyInfo(key_id, name, checked, enterprise, _now_ms(), None)
        with self._connect() as db:
            db.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, NULL)",
                       (key_id, name, _key_hash(plain), checked.value, enterprise, info.created_at))
        return info, plain

    def list_keys(self, include_revoked: bool = True) -> list[KeyInfo]:
        query = "SELECT id, name, role, enterprise, created_at, revoked_at FROM api_keys"
        if not include_revoked:
            query += " WHERE revoked_at IS NULL"
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY created_at, id").fetchall()
        return [KeyInfo(r[0], r[1], Role(r[2]), r[3], r[4], r[5]) for r in rows]

    def revoke_key(self, key_id: str) -> KeyInfo:
        """Disable a key at once.

        Raises:
            AuthStoreError: no such key.
        """
        with self._connect() as db:
            db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (_now_ms(), key_id))
        for key in self.list_keys():
            if key.id == key_id:
                return key
        raise AuthStoreError(f"no key {key_id!r}")

    def verify_key(self, key: str) -> Principal | None:
        """The principal of an active API key, else None."""
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX or len(key) > 200:
            return None
        with self._connect() as db:
            row = db.execute("SELECT key_hash, role, enterprise FROM api_keys WHERE id = ? AND revoked_at IS NULL",
                             (parts[1],)).fetchone()
        if row is None or not hmac.compare_digest(row[0], _key_hash(key)):
            return None
        return Principal("key", parts[1], Role(row[1]), row[2])
