"""The registry file as the single source: edits are validated as a whole document, written atomically
(temp file + rename) and take effect at once; a file changed by someone else is picked up within a second
by a `parkmodel.watch.RegistryWatcher` that runs in the app's lifespan (`async with source:`), so
`current()` is a plain read that never touches the disk."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

from parkmodel.registry import Registry, RegistryError, parse_registry
from parkmodel.watch import RegistryWatcher

log = logging.getLogger(__name__)
RECHECK_S = 1.0


class RegistrySource:
    """The registry in force, backed by a YAML file.

    Args:
        path: the registry file edits are written to.
        registry: the registry to serve until the file changes (normally the file's content).
        on_change: called with every new registry (edit or reload).
        interval_s: how often the file is checked for changes made by others.
    """

    def __init__(self, path: Path, registry: Registry, on_change: Callable[[Registry], None] | None = None,
                 *, interval_s: float = RECHECK_S) -> None:
        self.path = Path(path)
        self._registry = registry
        self._lock = asyncio.Lock()
        self._on_change = on_change
        self.watcher = RegistryWatcher(self.path, self._reloaded, interval_s=interval_s, name="api-registry-watch")

    async def __aenter__(self) -> Self:
        await self.watcher.__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.watcher.__aexit__(exc_type, exc, tb)

    def _reloaded(self, registry: Registry) -> None:
        self._set(registry)
        log.info("registry reloaded from %s", self.path)

    def _set(self, registry: Registry) -> None:
        self._registry = registry
        if self._on_change is not None:
            self._on_change(registry)

    def current(self) -> Registry:
        """The registry in force (kept up to date by the watcher; no I/O)."""
        return self._registry

    async def edit(self, mutate: Callable[[dict[str, Any]], None]) -> Registry:
        """Apply `mutate` to the file's document, validate the whole, write it, and serve it.

        Args:
            mutate: changes the document in place; raises to refuse.

        Raises:
            RegistryError: the changed document is not a valid registry (nothing is written).
        """
        async with self._lock:
            registry = await asyncio.to_thread(self._edit, mutate)
            self._set(registry)
        return registry

    def _edit(self, mutate: Callable[[dict[str, Any]], None]) -> Registry:
        if self.path.exists():
            data = yaml.safe_load(self.path.read_text(encoding="utf-8"))
        else:
            data = self._registry.model_dump(mode="json", exclude_defaults=True)
        if not isinstance(data, dict):
            raise RegistryError(f"{self.path}: the registry file is not a mapping")
        mutate(data)
        registry = parse_registry(data, str(self.path))
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            tmp.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
            tmp.replace(self.path)
        finally:
            tmp.unlink(missing_ok=True)
        self.watcher.prime()  # our own write is in force already: the watcher need not reload it
        log.info("registry edited and written to %s", self.path)
        return registry
