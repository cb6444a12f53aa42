"""Turns credentials into principals for HTTP and WebSocket alike: API keys, session tokens, and logins
(rate-limited). The blocking parts (SQLite, scrypt) run in worker threads, off the event loop."""

from __future__ import annotations

import asyncio
import logging

from api.auth.principal import Principal
from api.auth.ratelimit import LoginLimiter
from api.auth.store import KEY_PREFIX, AuthStore
from api.auth.tokens import DEFAULT_TTL_S, issue_token, read_token
from api.errors import ApiError, ErrorCode, unauthorized

log = logging.getLogger(__name__)


class Authenticator:
    """Checks credentials against one `AuthStore`.

    Args:
        store: the users and keys.
        token_ttl_s: lifetime of session tokens issued at login.
        limiter: login failure limiter (default: 5 failures per minute per username and address).
    """

    def __init__(self, store: AuthStore, token_ttl_s: int = DEFAULT_TTL_S, limiter: LoginLimiter | None = None) -> None:
        self.store = store
        self.token_ttl_s = token_ttl_s
        self.limiter = limiter or LoginLimiter()
        self._secret = store.token_secret()

    async def principal(self, credential: str) -> Principal | None:
        """The principal behind an API key or a session token; None if invalid, expired or revoked."""
        if credential.startswith(f"{KEY_PREFIX}_"):
            return await asyncio.to_thread(self.store.verify_key, credential)
        claimed = read_token(credential, self._secret)
        if claimed is None:
            return None
        # A revoked user's token stops working at once, not when it expires.
        return await asyncio.to_thread(self.store.active_user, claimed.subject)

    async def login(self, username: str, password: str, client: str) -> tuple[Principal, str]:
        """Check a username and password; the principal and a fresh session token.

        Raises:
            ApiError: `rate_limited` after too many failures, `unauthorized` for a wrong name or password.
        """
        name = username.strip().lower()
        wait = self.limiter.retry_after(name, client)
        if wait > 0:
            raise ApiError(ErrorCode.RATE_LIMITED, f"too many failed logins; try again in {wait:.0f} s",
                           headers={"Retry-After": str(max(1, round(wait)))})
        principal = await asyncio.to_thread(self.store.authenticate, name, password)
        if principal is None:
            self.limiter.failed(name, client)
            log.warning("login failed for user %r from %s", name[:64], client)  # never the password
            raise unauthorized("wrong username or password")
        self.limiter.succeeded(name, client)
        log.info("login: user %r (%s) from %s", name, principal.role.value, client)
        return principal, issue_token(principal, self._secret, self.token_ttl_s)
