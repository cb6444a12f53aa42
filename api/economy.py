"""An in-memory snapshot of the economic data store, read once in a worker thread, so the async report and
evaluation code (which reads the store synchronously) never runs SQLite in the event loop."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reports.store import EconomyStore, StoredRecord

__all__ = ["EconomySnapshot"]


@dataclass(frozen=True, slots=True)
class EconomySnapshot:
    """What `reports.build`/`reports.views` read of an `EconomyStore`: records, revision and latest month.

    Attributes:
        all_records: every stored record, ordered by enterprise and month.
        revision_: the store's revision when read.
        latest: the latest month reported (None: empty store).
    """

    all_records: tuple[StoredRecord, ...]
    revision_: int
    latest: str | None

    @classmethod
    def read(cls, store: EconomyStore) -> EconomySnapshot:
        """Read `store` (blocking: call through `asyncio.to_thread`).

        Args:
            store: the economic data store.
        """
        revision = store.revision()  # first: a change while reading makes the snapshot look older, never newer
        records = tuple(store.records())
        return cls(records, revision, max((r.record.month for r in records), default=None))

    def records(self, enterprises: Iterable[str] | None = None, months: Iterable[str] | None = None
                ) -> list[StoredRecord]:
        """Like `EconomyStore.records`, from memory."""
        ents = None if enterprises is None else set(enterprises)
        wanted = None if months is None else set(months)
        return [r for r in self.all_records
                if (ents is None or r.record.enterprise in ents) and (wanted is None or r.record.month in wanted)]

    def revision(self) -> int:
        return self.revision_

    def latest_month(self) -> str | None:
        return self.latest
