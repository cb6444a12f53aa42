"""Identifier rules shared by topics, registry and queries (contract v1)."""

from __future__ import annotations

import re

ID_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
_ID_RE = re.compile(rf"^{ID_PATTERN}$")


class InvalidIdError(ValueError):
    """An id does not match `[a-z0-9][a-z0-9_-]{0,63}`."""


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and _ID_RE.match(value) is not None


def validate_id(value: object, what: str = "id") -> str:
    """Return `value` if it is a valid contract id, else raise `InvalidIdError`.

    Args:
        value: the candidate id.
        what: what the id names (used in the error message).
    """
    if not is_valid_id(value):
        raise InvalidIdError(
            f"invalid {what} {value!r}: ids are 1-64 characters of a-z, 0-9, '_' or '-', "
            "starting with a letter or digit"
        )
    return value  # type: ignore[return-value]
