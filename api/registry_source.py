"""The registry file as the single source: edits are validated as a whole document, written atomically
(temp file + rename) and take effect at once; a file changed by someone else is picked up within a second."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from parkmodel.registry import Registry, RegistryError, load_registry, parse_registry

log = logging.getLogger(__name__)
RECHECK_S = 1.0


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns / 1e9
    except OSError:
        return None


class RegistrySource:
    """The registry in force, backed by a YAML file.

    Args:
        path: the registry file edits are written to.
        registry: the registry to serve until the file changes (normally the file's content).
        on_change: called with every new registry (edit or reload).
    """

    def __init__(self, path: Path, registry: Registry, on_change: Callable[[Registry], None] | None = None) -> None:
        self.path = Path(path)
        self._registry = registry
        self._mtime = _mtime(self.path)
        self._checked = time.monotonic()
        self._lock = asyncio.Lock()
        self._on_change = on_change

    def _set(self, registry: Registry) -> None:
        self._registry = registry
        if self._on_change is not None:
            self._on_change(registry)

    def current(self) -> Registry:
        """The registry in force; reloads (at most once a second) when the file's mtime changed."""
        now = time.monotonic()
        if now - self._checked >= RECHECK_S:
            self._checked = now
            mtime = _mtime(self.path)
            if mtime != self._mtime and mtime is not None:
                self._mtime = mtime
                try:
                    self._set(load_registry(self.path))
                    log.info("registry reloaded from %s", self.path)
                except RegistryError as exc:
                    log.error("registry file changed but is invalid; keeping the previous one: %s", exc)
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
        self._mtime = _mtime(self.path)
        log.info("registry edited and written to %s", self.path)
        return registry
