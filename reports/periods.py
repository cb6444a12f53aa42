"""Reporting periods: a calendar month (`2026-10`), a calendar year (`2026`) or the 12 months ending with a
month (`2026-10/12m`), all in Beijing time (UTC+8), as the analytics windows are."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

BEIJING_OFFSET_MS = 8 * 3600 * 1000
_PATTERN = re.compile(r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?P<rolling>/12m)?)?$")


class PeriodError(ValueError):
    """A period that cannot be parsed; the message shows the accepted forms."""


def month_start_ms(year: int, month: int) -> int:
    """Epoch ms of 00:00 Beijing time on the 1st of `year-month` (month may run past 12)."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp()) * 1000 - BEIJING_OFFSET_MS


@dataclass(frozen=True, slots=True)
class Period:
    """A run of whole months.

    Attributes:
        kind: `month`, `year` or `rolling` (12 months ending with `last`).
        first: first month as `(year, month)`.
        last: last month as `(year, month)`.
    """

    kind: Literal["month", "year", "rolling"]
    first: tuple[int, int]
    last: tuple[int, int]

    @property
    def label(self) -> str:
        y, m = self.last
        if self.kind == "month":
            return f"{y:04d}-{m:02d}"
        if self.kind == "year":
            return f"{y:04d}"
        return f"{y:04d}-{m:02d}/12m"

    @property
    def year(self) -> int:
        """The year the period belongs to (its last month's)."""
        return self.last[0]

    def months(self) -> list[str]:
        """Every month of the period as `YYYY-MM`, in order."""
        (y, m), out = self.first, []
        while (y, m) <= self.last:
            out.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out

    @property
    def start_ms(self) -> int:
        return month_start_ms(*self.first)

    @property
    def end_ms(self) -> int:
        """End, exclusive: 00:00 Beijing time of the month after the last."""
        return month_start_ms(self.last[0], self.last[1] + 1)

    @property
    def days(self) -> int:
        return (self.end_ms - self.start_ms) // 86_400_000


def parse_period(text: str) -> Period:
    """Parse `2026-10` (month), `2026` (year) or `2026-10/12m` (rolling 12 months ending October 2026).

    Raises:
        PeriodError: the text is none of these forms or the month is not 01..12.
    """
    found = _PATTERN.match(text.strip())
    if found is None:
        raise PeriodError(f"period {text!r}: expected YYYY-MM (a month), YYYY (a year) or YYYY-MM/12m "
                          "(the 12 months ending with that month)")
    year = int(found["year"])
    if found["month"] is None:
        return Period("year", (year, 1), (year, 12))
    month = int(found["month"])
    if not 1 <= month <= 12:
        raise PeriodError(f"period {text!r}: month {month:02d} is not 01..12")
    if found["rolling"]:
        first = (year, month + 1) if month < 12 else (year + 1, 1)
        return Period("rolling", (first[0] - 1, first[1]), (year, month))
    return Period("month", (year, month), (year, month))
