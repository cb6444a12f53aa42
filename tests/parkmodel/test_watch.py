"""parkmodel.watch: a change is recorded only once applied, so a failed apply is retried."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from parkmodel.registry import Registry
from parkmodel.watch import ChangeWatcher, RegistryWatcher
from tests.conftest import make_registry


def dump(registry: Registry, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(registry.model_dump(mode="json", exclude_defaults=True), allow_unicode=True),
                   encoding="utf-8")
    tmp.replace(path)  # a new inode: the signature changes even within one mtime tick


async def test_a_failed_apply_is_retried_at_the_next_check(tmp_path: Path, uid: str) -> None:
    path = tmp_path / "registry.yaml"
    dump(make_registry(uid), path)
    applied: list[Registry] = []
    fail = [True]

    def apply(registry: Registry) -> None:
        if fail[0]:
            raise RuntimeError("apply failed")
        applied.append(registry)

    async with RegistryWatcher(path, apply, interval_s=3600) as watcher:
        dump(make_registry(uid, enterprises=2), path)
        with pytest.raises(RuntimeError):
            await watcher.check()
        assert applied == [] and watcher.reloads == 0
        fail[0] = False
        assert await watcher.check()  # the same change, tried again
        assert len(applied) == 1 and len(applied[0].parks[0].enterprises) == 2
        assert not await watcher.check()  # and applied once only


async def test_invalid_content_is_not_retried_until_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "value.txt"
    path.write_text("1", encoding="utf-8")
    seen: list[int] = []
    watcher = ChangeWatcher(lambda: (path,), lambda: int(path.read_text(encoding="utf-8")), seen.append,
                            interval_s=3600)
    watcher.prime()
    path.write_text("not a number", encoding="utf-8")
    assert not await watcher.check() and watcher.failures == 1
    assert not await watcher.check() and watcher.failures == 1  # not loaded again
    path.write_text("42", encoding="utf-8")
    assert await watcher.check() and seen == [42]
