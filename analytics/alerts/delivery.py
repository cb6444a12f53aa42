"""Delivery of the outbox: at least once, in order per recipient, every attempt logged.

A recipient is `mqtt` (topics `sp/v1/{park}/{enterprise}/alerts` and `sp/v1/{park}/safety`) or a
webhook subscriber. Each recipient is delivered by whichever worker holds its lease; its oldest
pending row goes first and a failure holds the rest back until the retry (jittered exponential
backoff), so a receiver that comes back gets everything, in order. Webhook bodies are signed:
`X-SmartPark-Signature: sha256=<hex HMAC-SHA256 of the body>`, with `X-SmartPark-Timestamp` (ms)
and `X-SmartPark-Delivery` (unique id, for the receiver's dedupe).
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from dataclasses import dataclass

SIGNATURE_HEADER = "X-SmartPark-Signature"
TIMESTAMP_HEADER = "X-SmartPark-Timestamp"
DELIVERY_HEADER = "X-SmartPark-Delivery"
EVENT_HEADER = "X-SmartPark-Event"


def sign(key: bytes, body: bytes) -> str:
    """The signature header value of a body: `sha256=<hex HMAC>`."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(key: bytes, body: bytes, header: str | None) -> bool:
    """Whether a signature header matches the body (constant-time), for receivers and tests."""
    return header is not None and hmac.compare_digest(sign(key, body), header)


def webhook_headers(key: bytes, body: bytes, delivery_id: str, event: str, at_ms: int | None = None
                    ) -> dict[str, str]:
    """Headers of one webhook attempt.

    Args:
        key: the subscriber's secret.
        body: the exact body bytes sent.
        delivery_id: the notification's unique id (the same on every retry).
        event: lifecycle event name.
        at_ms: attempt time (default: now).
    """
    ts = time.time_ns() // 1_000_000 if at_ms is None else at_ms
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(key, body),
        TIMESTAMP_HEADER: str(ts),
        DELIVERY_HEADER: delivery_id,
        EVENT_HEADER: event,
    }


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Jittered exponential backoff between attempts of one notification.

    Args:
        first_s: delay after the first failure (before jitter).
        max_s: cap of the delay.
    """

    first_s: float = 1.0
    max_s: float = 300.0

    def delay_s(self, failures: int) -> float:
        """Delay after `failures` consecutive failures (≥ 1), jittered to 50–100 %."""
        return min(self.max_s, self.first_s * 2 ** max(0, failures - 1)) * random.uniform(0.5, 1.0)
