"""Versioned per-park rule overrides on disk: what the API edits and the engines watch.

`{rules_dir}/{park}.yaml` is the park's override in force (the shape of the default file, see
`analytics.alerts.rules`); every version written is also kept as `{rules_dir}/history/{park}.{revision}.yaml`
and logged in `{rules_dir}/history/{park}.jsonl` (revision, who, when, which rule ids changed), so any earlier
version can be read back and restored. A write validates the override merged into the defaults first and
replaces the file atomically (temporary file + rename) under an exclusive lock of the folder, so running
engines never read half a file and two editors never interleave. Blocking: call from a worker thread.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from analytics.alerts.rules import DEFAULT_RULES, RulesError, RuleSet, _read, park_ruleset, read_defaults
from parkmodel.registry import Registry

__all__ = ["RevisionConflict", "RuleFiles", "RuleVersion"]


class RevisionConflict(RuntimeError):
    """The override changed since the revision the editor started from."""


@dataclass(frozen=True, slots=True)
class RuleVersion:
    """One entry of a park's rule history.

    Attributes:
        park: park id.
        revision: the park override's revision (1, 2, ...); 0 after a deletion back to the defaults.
        action: "put" or "delete".
        by: who made the change (username or API key id).
        at_ms: when (epoch ms).
        changed: rule ids added, changed or removed against the previous version ("quotas" if those changed).
        file: the kept copy of this version, relative to the rules folder ("" for a deletion).
    """

    park: str
    revision: int
    action: str
    by: str
    at_ms: int
    changed: tuple[str, ...]
    file: str


class RuleFiles:
    """The rules folder.

    Args:
        rules_dir: folder of `{park}.yaml` overrides (created on the first write).
        defaults: the default rules file.
    """

    def __init__(self, rules_dir: Path, defaults: Path = DEFAULT_RULES) -> None:
        self.rules_dir = Path(rules_dir)
        self.defaults_path = defaults

    def defaults(self) -> dict[str, Any]:
        """The default rules mapping (validated)."""
        return read_defaults(self.defaults_path)

    def path(self, park: str) -> Path:
        return self.rules_dir / f"{park}.yaml"

    def override(self, park: str) -> dict[str, Any] | None:
        """The park's override in force, or None when the park runs on the defaults."""
        path = self.path(park)
        return _read(path) if path.exists() else None

    def parks(self) -> list[str]:
        """Parks with an override file."""
        return sorted(p.stem for p in self.rules_dir.glob("*.yaml")) if self.rules_dir.is_dir() else []

    def history(self, park: str) -> list[RuleVersion]:
        """The park's versions, oldest first."""
        log = self._log(park)
        if not log.exists():
            return []
        out = []
        for line in log.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                out.append(RuleVersion(**{**row, "changed": tuple(row["changed"])}))
        return out

    def revision(self, park: str) -> int:
        """The revision in force (0: defaults only)."""
        versions = self.history(park)
        return versions[-1].revision if versions else (1 if self.path(park).exists() else 0)

    def effective(self, registry: Registry, park: str) -> RuleSet:
        """The park's effective rules (defaults merged with its override)."""
        return park_ruleset(registry, park, self.override(park) or {}, str(self.path(park)), self.defaults())

    def version(self, park: str, revision: int) -> dict[str, Any]:
        """A kept version of the park's override.

        Raises:
            RulesError: no such version.
        """
        path = self.rules_dir / "history" / f"{park}.{revision}.yaml"
        if not path.exists():
            raise RulesError(f"park {park!r} has no rules revision {revision}")
        return _read(path)

    def put(self, registry: Registry, park: str, override: Any, by: str, *,
            base_revision: int | None = None) -> RuleVersion:
        """Validate and store a park's override as its next revision.

        Args:
            registry: the registry in force (the park and the quotas' enterprises must be in it).
            park: park id.
            override: the override mapping (`version`, `rules`, `quotas`; `revision` is assigned here).
            by: who is writing.
            base_revision: refuse if the revision in force is not this one (optimistic concurrency).

        Raises:
            RulesError: the override does not validate (the message names the key); nothing is written.
            RevisionConflict: `base_revision` is stale.
        """
        if not isinstance(override, dict):
            raise RulesError("request body: the top level must be a mapping (version:, rules:, quotas:)")
        with self._locked():
            history = self.history(park)
            current = self.revision(park)
            if base_revision is not None and base_revision != current:
                raise RevisionConflict(f"park {park!r} rules are at revision {current}, not {base_revision}")
            revision = max((v.revision for v in history), default=current) + 1  # never reused, even after a delete
            doc = {"version": override.get("version", 1), "revision": str(revision),
                   **{k: v for k, v in override.items() if k not in ("version", "revision")}}
            park_ruleset(registry, park, doc, f"{park}.yaml", self.defaults())
            previous = self.override(park) or {}
            text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
            kept = Path("history") / f"{park}.{revision}.yaml"
            _atomic_write(self.rules_dir / kept, text)
            _atomic_write(self.path(park), text)
            entry = RuleVersion(park, revision, "put", by, _now_ms(), _changed(previous, doc), str(kept))
            self._append(entry)
        return entry

    def delete(self, park: str, by: str) -> RuleVersion | None:
        """Remove the park's override (back to the defaults); None if it had none. Earlier versions stay kept."""
        with self._locked():
            previous = self.override(park)
            if previous is None:
                return None
            self.path(park).unlink()
            entry = RuleVersion(park, 0, "delete", by, _now_ms(), _changed(previous, {}), "")
            self._append(entry)
        return entry

    def _log(self, park: str) -> Path:
        return self.rules_dir / "history" / f"{park}.jsonl"

    def _append(self, entry: RuleVersion) -> None:
        log = self._log(entry.park)
        with log.open("a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(entry), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    @contextmanager
    def _locked(self) -> Iterator[None]:
        (self.rules_dir / "history").mkdir(parents=True, exist_ok=True)
        with (self.rules_dir / "history" / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _changed(before: dict[str, Any], after: dict[str, Any]) -> tuple[str, ...]:
    def rules(doc: dict[str, Any]) -> dict[str, Any]:
        items = doc.get("rules") or []
        return {r["id"]: r for r in items if isinstance(r, dict) and "id" in r}

    a, b = rules(before), rules(after)
    out = sorted(rid for rid in a.keys() | b.keys() if a.get(rid) != b.get(rid))
    if (before.get("quotas") or {}) != (after.get("quotas") or {}):
        out.append("quotas")
    return tuple(out)
