"""Password hashing with the standard library's scrypt (memory-hard), encoded with its parameters so they
can be raised later without invalidating stored hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# n=2**14, r=8: ~16 MiB and ~40 ms per hash on one core; OWASP's minimum for scrypt.
N, R, P = 2**14, 8, 1
MAXMEM = 64 * 1024 * 1024
MIN_PASSWORD = 8
MAX_PASSWORD = 1024


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def hash_password(password: str) -> str:
    """`scrypt$n$r$p$salt$hash`, salt and hash in base64."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, maxmem=MAXMEM, dklen=32)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether `password` matches an encoded hash (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode()[:MAX_PASSWORD * 4], salt=base64.b64decode(salt), n=int(n), r=int(r),
                             p=int(p), maxmem=MAXMEM, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


# Verifying against this when the user does not exist keeps the response time the same either way.
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
