"""Login rate limit: after too many failures for one username from one address, refuse for a while."""

from __future__ import annotations

import time
from collections import deque

MAX_TRACKED = 10_000


class LoginLimiter:
    """Counts failed logins per (username, client address) in a sliding window.

    Args:
        max_failures: failures allowed inside the window.
        window_s: the window, in seconds.
    """

    def __init__(self, max_failures: int = 5, window_s: float = 60.0) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def retry_after(self, username: str, client: str, now: float | None = None) -> float:
        """Seconds until this pair may try again; 0 when it may try now."""
        now = time.monotonic() if now is None else now
        times = self._recent((username, client), now)
        if len(times) < self.max_failures:
            return 0.0
        return times[0] + self.window_s - now

    def failed(self, username: str, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if len(self._failures) >= MAX_TRACKED:  # drop pairs whose window has passed
            self._failures = {k: v for k, v in self._failures.items() if self._recent(k, now)}
        key = (username, client)
        times = self._recent(key, now)
        times.append(now)
        self._failures[key] = times

    def succeeded(self, username: str, client: str) -> None:
        self._failures.pop((username, client), None)
