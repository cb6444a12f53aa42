"""Watch files for changes by polling their signature (inode, mtime, size) in a named asyncio task.

    async with RegistryWatcher(settings.registry, on_change=service.apply_registry):
        ...

Editors (the API's `api.registry_source`, an operator's `mv`) replace the file atomically, so a rename
changes the inode even when the mtime's granularity hides a quick second write. Polling once a second
costs one `stat` per file and needs no thread and no inotify; the blocking read and validation of a
changed file run in a worker thread, never in the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from parkmodel.registry import Registry, RegistryError, load_registry

__all__ = ["ChangeWatcher", "RegistryWatcher", "Signature", "signature"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Per file: (name, inode, mtime ns, size), or (name,) for a missing file.
Signature = tuple[tuple[Any, ...], ...]
OnChange = Callable[[T], Awaitable[None] | None]


def signature(paths: Iterable[Path]) -> Signature:
    """What identifies the current content of `paths` without reading them (missing files included)."""
    out: list[tuple[Any, ...]] = []
    for path in sorted(paths):
        try:
            st = path.stat()
        except OSError:
            out.append((str(path),))
            continue
        out.append((str(path), st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


class ChangeWatcher(Generic[T]):
    """Polls a signature; when it changes, loads the new content and hands it to `on_change`.

    `load` runs in a worker thread; an exception of one of `errors` (a file that does not validate) is
    logged with its message and the last good content stays in force: `on_change` is not called, and the
    next change is tried again. Any other failure (of `load` or of `on_change`) leaves the change pending,
    so the next poll tries it again.

    Args:
        files: the files whose signature is watched (called each poll, so a folder's listing can change).
        load: reads and validates the content (blocking).
        on_change: called with each valid new content (sync or async).
        errors: exceptions of `load` that mean "invalid content".
        interval_s: polling period.
        name: task name (and log label).
    """

    def __init__(self, files: Callable[[], Iterable[Path]], load: Callable[[], T], on_change: OnChange[T], *,
                 errors: tuple[type[BaseException], ...] = (ValueError,), interval_s: float = 1.0,
                 name: str = "watch") -> None:
        self._files = files
        self._load = load
        self._on_change = on_change
        self._errors = errors
        self.interval_s = interval_s
        self.name = name
        self._seen: Signature | None = None
        self._task: asyncio.Task[None] | None = None
        self.reloads = 0
        self.failures = 0
        self.last_error: str | None = None

    async def __aenter__(self) -> Self:
        self.prime()
        self._task = asyncio.create_task(self.run(), name=self.name)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                # Our own cancellation propagates; the watcher's (just requested) is swallowed.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
            self._task = None

    def prime(self) -> None:
        """Take the current signature as the content in force (done by `__aenter__` and `run`)."""
        self._seen = signature(self._files())

    async def check(self) -> bool:
        """Compare the signature once; reload if it changed. Returns True if new content was applied."""
        now = signature(self._files())
        if now == self._seen:
            return False
        # `now` is taken before reading, so a write during the read shows up at the next poll.
        try:
            value = await asyncio.to_thread(self._load)
        except self._errors as exc:
            self._seen = now  # invalid content is not retried until the files change again
            self.failures += 1
            self.last_error = str(exc)
            log.error("%s: changed content is invalid, keeping the last good one: %s", self.name, exc)
            return False
        self.last_error = None
        result = self._on_change(value)
        if inspect.isawaitable(result):
            await result
        # Recorded only once applied: a load or an `on_change` that raises is retried at the next poll.
        self._seen = now
        self.reloads += 1
        log.info("%s: new content applied", self.name)
        return True

    async def run(self) -> None:
        """Poll until cancelled (for a caller's own TaskGroup; `async with` runs it in a task of its own)."""
        if self._seen is None:
            self.prime()
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except Exception:  # a failing callback must not end the watch
                log.exception("%s: applying a change failed", self.name)


class RegistryWatcher(ChangeWatcher[Registry]):
    """Watches a registry YAML file; each valid new version is handed to `on_change`.

    An invalid file is logged with the `RegistryError` message (file and key) and ignored.

    Args:
        path: the registry file (`settings.registry`).
        on_change: called with the new `Registry` (sync or async).
        interval_s: polling period.
        name: task name.
    """

    def __init__(self, path: Path | str, on_change: OnChange[Registry], *, interval_s: float = 1.0,
                 name: str = "registry-watch") -> None:
        self.path = Path(path)
        super().__init__(lambda: (self.path,), lambda: load_registry(self.path), on_change,
                         errors=(RegistryError,), interval_s=interval_s, name=name)
