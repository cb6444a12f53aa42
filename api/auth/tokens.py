"""Short-lived signed session tokens (JWT, HS256, PyJWT) for logged-in users."""

from __future__ import annotations

import time

import jwt

from api.auth.principal import Principal, Role

ALGORITHM = "HS256"
ISSUER = "smartpark-api"
DEFAULT_TTL_S = 3600


def issue_token(principal: Principal, secret: str, ttl_s: int = DEFAULT_TTL_S, now: float | None = None) -> str:
    """A token naming the user, role and enterprise, valid `ttl_s` seconds.

    Args:
        principal: a logged-in user.
        secret: the store's signing secret.
        ttl_s: lifetime in seconds.
        now: issue time (epoch s), for tests.
    """
    issued = int(now if now is not None else time.time())
    claims = {"iss": ISSUER, "sub": principal.subject, "role": principal.role.value, "iat": issued,
              "exp": issued + ttl_s}
    if principal.enterprise is not None:
        claims["ent"] = principal.enterprise
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_token(token: str, secret: str) -> Principal | None:
    """The principal a valid, unexpired token names, else None (bad signature, expired, malformed)."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], issuer=ISSUER,
                            options={"require": ["exp", "iat", "sub"]})
        return Principal("user", str(claims["sub"]), Role(claims["role"]), claims.get("ent"))
    except (jwt.PyJWTError, KeyError, ValueError):
        return None
