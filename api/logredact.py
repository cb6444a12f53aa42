"""Keep credentials out of uvicorn's logs: uvicorn logs each request's and WebSocket's path with its query at
INFO, so a client that still sends `?token=...` or `?key=...` would write the secret into the log file."""

from __future__ import annotations

import logging
import re

__all__ = ["UVICORN_LOGGERS", "RedactQuerySecrets", "install_redaction"]

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
#: A query parameter whose name ends in token or key (token, access_token, key, api_key, ...) and its value.
_SECRET = re.compile(r"(?i)([?&][\w.-]*(?:token|key)=)[^&#\s\"']*")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` with the values of `token=`/`key=` query parameters replaced."""
    return _SECRET.sub(lambda m: m.group(1) + REDACTED, text)


class RedactQuerySecrets(logging.Filter):
    """Rewrites a record's message and string arguments (uvicorn's access formatter unpacks the arguments,
    so they are redacted in place, not merged into the message)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def install_redaction() -> None:
    """Add the filter to uvicorn's loggers (once; logger filters see only records logged to that logger, so
    each of them gets it). Safe to call again after uvicorn configured its logging."""
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQuerySecrets) for f in logger.filters):
            logger.addFilter(RedactQuerySecrets())
