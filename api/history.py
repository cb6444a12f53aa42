"""History read from the right resolution: 1-hour or 1-minute rollups where they hold data, raw elsewhere.

The caller's bucket (`every`) decides which sources may serve it (`api.queries.history_sources`). The
coarsest one is asked where its rows begin and end inside the range; that stretch, cut at bucket
boundaries, is read from it and the rest (before: history older than the rollups; after: the minutes or
hours the continuous queries have not rolled up yet) from the next finer source, the same way down to
raw. Every source is read with the same per-field aggregate, so the pieces agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel

from api.influx import InfluxReader
from api.queries import HistorySource, HistoryTarget, HistoryWindow
from smartpark.config import InfluxSettings
from smartpark.influx_schema import SOURCE_1H, SOURCE_1M, SOURCE_RAW

_COARSEST_FIRST = (SOURCE_1H, SOURCE_1M, SOURCE_RAW)


def _influx_settings(request: Request) -> InfluxSettings:
    return request.app.state.settings.influx  # type: ignore[no-any-return]


InfluxSettingsDep = Annotated[InfluxSettings, Depends(_influx_settings)]


class SegmentPublic(BaseModel):
    """A stretch of a history answer and where it was read from."""

    source: str  # "raw", "rollup_1m" or "rollup_1h"
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch [start_ms, end_ms) of the answer and the source it was read from."""

    source: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class History:
    points: list[dict[str, Any]]  # {"ts": ms, field: value, ...} in time order, null fields left out
    segments: list[Segment]

    @property
    def source(self) -> str:
        """The coarsest source read (stretches without rollups came from finer ones); raw when nothing was."""
        return min((s.source for s in self.segments), key=_COARSEST_FIRST.index, default=SOURCE_RAW)

    def segments_public(self) -> list[SegmentPublic]:
        return [SegmentPublic(source=s.source, start=s.start_ms, end=s.end_ms) for s in self.segments]


def _floor(ms: int, step_ms: int) -> int:
    return ms // step_ms * step_ms


def _ceil(ms: int, step_ms: int) -> int:
    return -(-ms // step_ms) * step_ms


async def _coverage(influx: InfluxReader, target: HistoryTarget, source: HistorySource, lo: int,
                    hi: int) -> tuple[int, int] | None:
    """Times of the first and last row of `source` inside [lo, hi), or None when it has none there."""
    results = await influx.query(target.coverage_query(source, lo, hi))
    times = [int(row["time"]) for series_list in results for series in series_list for row in series.rows()]
    return (min(times), max(times)) if times else None


async def existing_sources(influx: InfluxReader, sources: list[HistorySource]) -> list[HistorySource]:
    """`sources` without the rollups whose retention policy does not exist (`smartpark influx setup` not run).

    Args:
        influx: the reader.
        sources: candidate sources; raw (the default policy) always exists.
    """
    if all(s.rp is None for s in sources):
        return sources
    (series_list,) = await influx.query("SHOW RETENTION POLICIES") or ([],)
    names = {row.get("name") for series in series_list for row in series.rows()}
    return [s for s in sources if s.rp is None or s.rp in names]


async def plan_segments(influx: InfluxReader, target: HistoryTarget, lo: int, hi: int, every_s: int,
                        sources: list[HistorySource]) -> list[Segment]:
    """Split [lo, hi) into stretches each read from the coarsest source that holds them.

    Args:
        influx: the reader.
        target: measurement, filter and select list.
        lo: start of the range (ms).
        hi: end of the range (ms).
        every_s: the bucket; cuts fall on bucket boundaries so no bucket is read twice.
        sources: candidate sources, coarsest first, raw last.
    """
    if lo >= hi:
        return []
    source, finer = sources[0], sources[1:]
    if not finer:
        return [Segment(source.name, lo, hi)]
    covered = await _coverage(influx, target, source, lo, hi)
    if covered is None:
        return await plan_segments(influx, target, lo, hi, every_s, finer)
    first, last = covered
    every_ms, row_ms = every_s * 1000, source.interval_s * 1000
    # A row at t summarises [t, t + row interval).
    head = lo if first < lo + row_ms else _ceil(first, every_ms)
    tail = hi if last + row_ms >= hi else _floor(last + row_ms, every_ms)
    if head >= tail:
        return await plan_segments(influx, target, lo, hi, every_s, finer)
    return [*await plan_segments(influx, target, lo, head, every_s, finer),
            Segment(source.name, head, tail),
            *await plan_segments(influx, target, tail, hi, every_s, finer)]


async def read_history(influx: InfluxReader, target: HistoryTarget, window: HistoryWindow,
                       sources: list[HistorySource]) -> History:
    """Buckets of `window.every_s` over the window, each stretch from the coarsest source holding it.

    Args:
        influx: the reader.
        target: measurement, filter and select list.
        window: range and bucket.
        sources: candidate sources, coarsest first, raw last (`api.queries.history_sources`).
    """
    sources = await existing_sources(influx, sources)
    segments = await plan_segments(influx, target, window.start_ms, window.end_ms, window.every_s, sources)
    by_name = {s.name: s for s in sources}
    statements = [target.query(by_name[seg.source], seg.start_ms, seg.end_ms, window.every_s) for seg in segments]
    results = await influx.query("; ".join(statements)) if statements else []
    points: list[dict[str, Any]] = []
    for series_list in results:
        for series in series_list:
            for row in series.rows():
                ts = int(row.pop("time"))
                values = {k: v for k, v in row.items() if v is not None}
                if values:
                    points.append({"ts": ts, **values})
    points.sort(key=lambda p: p["ts"])
    return History(points, segments)
