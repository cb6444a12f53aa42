"""Dead-letter messages: what ingest rejected, with why, on `sp/v1/_deadletter/{reason}` (interfaces.md)."""

from __future__ import annotations

import base64

import orjson

from parkmodel.codec import CONTRACT_VERSION, Reason
from parkmodel.topics import DEAD_LETTER_ROOT


def dead_letter_topic(reason: Reason) -> str:
    """`sp/v1/_deadletter/{reason}`.

    Args:
        reason: the rejection reason.
    """
    return f"{DEAD_LETTER_ROOT}/{reason.value}"


def dead_letter_payload(topic: str, payload: bytes, reason: Reason, error: str, now_ms: int) -> bytes:
    """The dead-letter JSON: the original topic and payload (UTF-8 text, else `base64:...`) and the reason.

    Args:
        topic: the topic the message arrived on.
        payload: its raw payload.
        reason: why it was rejected.
        error: what was wrong, in words.
        now_ms: when it was rejected (epoch ms).
    """
    try:
        original = payload.decode("utf-8")
    except UnicodeDecodeError:
        original = "base64:" + base64.b64encode(payload).decode("ascii")
    return orjson.dumps({"v": CONTRACT_VERSION, "ts": now_ms, "topic": topic, "reason": reason.value,
                         "error": error, "payload": original})
