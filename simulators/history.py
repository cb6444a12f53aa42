"""`smartpark simulate history`: months of realistic telemetry for the demo park, straight into InfluxDB.

The history comes from the live simulator's own physics (`simulators.model.EnterpriseSim`: load
profiles, PV under one sky, storage, green supply, the grid meter as the balance), stepped at 1-minute
resolution and written to measurement `telemetry` exactly as ingest stores the live edge path: tags
park, enterprise, device, role; one float field per template point, rounded to the register's
resolution (integer registers) or to float32, counters wrapping where their register does.

Counters end where the live simulator with the same seed starts them, so live data continues the
history without a jump. Where that would need a counter below zero, the meter is taken to have been
replaced during the history (a counter reset, which analytics handles).
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import httpx
import numpy as np
import typer

from edge_agent.registermap import DataType, PointMap, load_template
from parkmodel.points import POINTS, PointKind
from parkmodel.registry import Registry, RegistryError, load_registry
from simulators.model import DeviceSim, EnterpriseSim, device_rng
from simulators.weather import Weather

MINUTE_S = 60
DAY_S = 86_400
#: Lines per gzip'd POST to /write.
WRITE_BATCH_LINES = 25_000
_INT_BITS = {DataType.INT16: 16, DataType.UINT16: 16, DataType.INT32: 32, DataType.UINT32: 32}
_SIGNED = {DataType.INT16, DataType.INT32}


@dataclass
class _Series:
    """One simulated device's recording: its tag set and a column per template point."""

    sim: DeviceSim
    tags: str
    points: list[PointMap]
    offset_ms: int


def _build(registry: Registry, seed: int) -> tuple[list[tuple[str, EnterpriseSim]], dict[str, Weather],
                                                    list[_Series]]:
    enterprises: list[tuple[str, EnterpriseSim]] = []
    weather: dict[str, Weather] = {}
    series: list[_Series] = []
    for park in registry.parks:
        weather[park.id] = Weather(random.Random(seed * 7919 + zlib.crc32(park.id.encode())))
        for ent in park.enterprises:
            sims: list[DeviceSim] = []
            for gw in ent.gateways:
                for unit_id, dev in enumerate(gw.devices, start=1):
                    ref = registry.device(dev.id)
                    assert ref is not None
                    template = load_template(dev.template)
                    sim = DeviceSim(ref, template, unit_id, device_rng(seed, dev.id))
                    sims.append(sim)
                    points = [p for p in template.points if p.type is not DataType.BIT or p.point in POINTS]
                    tags = f"park={park.id},enterprise={ent.id},device={dev.id},role={dev.role.value}"
                    series.append(_Series(sim, tags, points, zlib.crc32(dev.id.encode()) % 5000))
            enterprises.append((park.id, EnterpriseSim(ent, sims)))
    return enterprises, weather, series


def _as_read(p: PointMap, values: np.ndarray) -> np.ndarray:
    """What the edge agent reads back from the register: resolution, float32, counter wrap-around."""
    if p.type is DataType.FLOAT32:
        return values.astype(np.float32).astype(np.float64)
    bits = _INT_BITS.get(p.type)
    if bits is None:
        return values
    raw = np.round((values - p.offset) / p.scale)
    if POINTS[p.point].kind is PointKind.COUNTER:
        raw = np.mod(raw, float(1 << bits))
    elif p.type in _SIGNED:
        raw = np.clip(raw, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    else:
        raw = np.clip(raw, 0, (1 << bits) - 1)
    decimals = min(9, max(0, int(np.ceil(-np.log10(abs(p.scale)))) + 1)) if p.scale else 9
    return np.round(raw * p.scale + p.offset, decimals)  # 0.944, not 0.9440000000000001, as the edge prints it


@dataclass(frozen=True, slots=True)
class HistoryPlan:
    """What `generate` will produce."""

    start_s: int
    end_s: int
    step_s: int

    @property
    def steps(self) -> int:
        return (self.end_s - self.start_s) // self.step_s


class HistoryGenerator:
    """Steps the park's physics over `[end − days, end)` and yields line protocol a day at a time.

    Args:
        registry: the park registry.
        days: length of the history.
        end_s: end of the history (epoch seconds, default now): the live simulator takes over there.
        step_s: seconds between readings (60: 1-minute resolution).
        seed: the live simulator's seed (counters end where it starts them).
    """

    def __init__(self, registry: Registry, days: float, *, end_s: float | None = None, step_s: int = MINUTE_S,
                 seed: int = 0) -> None:
        if not 0 < days <= 3660:
            raise ValueError(f"days is {days!r}: expected more than 0 and at most 3660")
        if not 1 <= step_s <= 3600:
            raise ValueError(f"step_s is {step_s!r}: expected 1 .. 3600 seconds")
        end = int(time.time() if end_s is None else end_s) // step_s * step_s
        self.plan = HistoryPlan(end - int(days * DAY_S) // step_s * step_s, end, step_s)
        self.enterprises, self.weather, self.series = _build(registry, seed)
        # Counters at the end of the history = the live simulator's starting counters (same seed, fresh sims).
        self._end_counters = [dict(s.sim.counters) for s in self.series]
        self._offset: list[dict[str, float]] = []

    def _simulate(self, start_s: int, n: int, *, record: bool = True) -> list[np.ndarray]:
        """Step `n` times from `start_s`; per device a `(n, points)` array of true (unrounded) values.

        Without `record` only the counters advance (the measuring pass): nothing is copied out and the
        safety devices, whose values feed no counter and whose generators no meter shares, are not stepped.
        """
        out = [np.zeros((n, len(s.points))) for s in self.series] if record else []
        dt_h = self.plan.step_s / 3600
        # Per device, where each column comes from: its counters dict or its values dict.
        sources = [[(name in s.sim.counters, name) for name in (p.point for p in s.points)] for s in self.series]
        for k in range(n):
            ts = start_s + k * self.plan.step_s
            for w in self.weather.values():
                w.step(ts, dt_h if ts > self.plan.start_s else 0.0)
            for park_id, ent in self.enterprises:
                if record:
                    ent.step(ts, dt_h if ts > self.plan.start_s else 0.0, self.weather[park_id])
                else:
                    _step_counters(ent, ts, dt_h if ts > self.plan.start_s else 0.0, self.weather[park_id])
            if not record:
                continue
            for s, rows, src in zip(self.series, out, sources, strict=True):
                v, c = s.sim.values, s.sim.counters
                rows[k] = [c[name] if is_counter else v.get(name, 0.0) for is_counter, name in src]
        return out

    def _counter_offsets(self) -> None:
        """Run the whole history once to learn each counter's end value, and shift it onto the live start.

        The energy of the run is known only at its end and a months-long history does not fit in memory,
        so `plan_history` runs the (deterministic, seeded) physics twice: this pass only measures.
        """
        for day in self._days():
            self._simulate(*day, record=False)
        self._offset = [{name: end[name] - s.sim.counters[name] for name in end}
                        for s, end in zip(self.series, self._end_counters, strict=True)]

    def _days(self) -> Iterator[tuple[int, int]]:
        p = self.plan
        per_day = DAY_S // p.step_s
        for k in range(0, p.steps, per_day):
            yield p.start_s + k * p.step_s, min(per_day, p.steps - k)

    def lines(self) -> Iterator[tuple[int, list[str]]]:
        """Yield `(day_start_s, lines)` for each day of the history, in time order."""
        for start_s, n in self._days():
            values = self._simulate(start_s, n)
            ts_ms = (start_s + np.arange(n) * self.plan.step_s) * 1000
            out: list[str] = []
            for s, offsets, rows in zip(self.series, self._offset_or_zero(), values, strict=True):
                cols = []
                for j, p in enumerate(s.points):
                    col = rows[:, j]
                    if p.point in offsets:
                        col = col + offsets[p.point]
                        # Below zero the meter had not been fitted yet: an older meter read far higher (a reset).
                        col = np.where(col < 0, col + max(1e6, 4 * abs(offsets[p.point])), col)
                    cols.append(_as_read(p, col))
                # Format column by column (one repr per value), then glue each row's fields.
                texts = [[f"{p.point}={v!r}" for v in col.tolist()] for p, col in zip(s.points, cols, strict=True)]
                prefix = f"telemetry,{s.tags} "
                stamps = [f" {t}" for t in (ts_ms + s.offset_ms).tolist()]
                out.extend(prefix + ",".join(fields) + t for *fields, t in zip(*texts, stamps, strict=True))
            yield start_s, out

    def _offset_or_zero(self) -> list[dict[str, float]]:
        return self._offset or [dict.fromkeys(s.sim.counters, 0.0) for s in self.series]


def _step_counters(ent: EnterpriseSim, ts: float, dt_h: float, weather: Weather) -> None:
    """`EnterpriseSim.step` without the safety devices (copied from simulators/model.py, the same order of random
    draws for every meter): the counters advance exactly as in the full step."""
    load_kw, load_kvar = ent._loads(ts, dt_h)
    gen_kw = ent._generation(ts, weather, dt_h)
    green_kw = ent._green_supply(ts, weather, dt_h, max(0.0, load_kw - gen_kw))
    storage_kw = ent._storage(ts, dt_h, load_kw, gen_kw + green_kw)
    ent._grid(weather, dt_h, load_kw - gen_kw - green_kw - storage_kw, load_kvar)
    ent._utilities(ts, dt_h, load_kw)
    for d in ent.devices:
        if "frequency_hz" in d.point_names:
            d.values["frequency_hz"] = weather.frequency_hz + d.rng.gauss(0.0, 0.002)


def plan_history(registry: Registry, days: float, *, end_s: float | None = None, step_s: int = MINUTE_S,
                 seed: int = 0) -> HistoryGenerator:
    """A generator whose counters end at the live simulator's start values (two passes of the physics)."""
    probe = HistoryGenerator(registry, days, end_s=end_s, step_s=step_s, seed=seed)
    probe._counter_offsets()
    gen = HistoryGenerator(registry, days, end_s=end_s, step_s=step_s, seed=seed)
    gen._offset = probe._offset
    return gen


async def write_history(gen: HistoryGenerator, influx_url: str, database: str, *, progress: bool = True,
                        timeout_s: float = 120.0) -> int:
    """Generate the history and write it to `telemetry`, gzip'd in batches; the generation of the next day
    runs in a worker thread while the current one is written.

    Returns:
        The number of lines written.

    Raises:
        httpx.HTTPError: InfluxDB could not be reached or refused a write.
    """
    import gzip

    written = 0
    started = time.monotonic()
    days = list(gen._days())
    it = gen.lines()
    async with httpx.AsyncClient(base_url=influx_url, timeout=timeout_s) as client:
        r = await client.post("/query", data={"q": f'CREATE DATABASE "{database}"'})
        r.raise_for_status()
        nxt = asyncio.ensure_future(asyncio.to_thread(next, it, None))
        for i in range(len(days)):
            item = await nxt
            if item is None:
                break
            nxt = asyncio.ensure_future(asyncio.to_thread(next, it, None)) if i + 1 < len(days) else None
            _, lines = item
            for k in range(0, len(lines), WRITE_BATCH_LINES):
                body = gzip.compress("\n".join(lines[k:k + WRITE_BATCH_LINES]).encode(), compresslevel=1)
                w = await client.post("/write", params={"db": database, "precision": "ms"}, content=body,
                                      headers={"Content-Encoding": "gzip"})
                if w.status_code != 204:
                    raise httpx.HTTPStatusError(f"InfluxDB refused the write: HTTP {w.status_code}: {w.text}",
                                                request=w.request, response=w)
            written += len(lines)
            if progress:
                rate = written / max(time.monotonic() - started, 1e-9)
                print(f"\rhistory: day {i + 1}/{len(days)}, {written:,} lines, {rate:,.0f} lines/s",
                      end="", file=sys.stderr, flush=True)
        if nxt is not None:
            await nxt
    if progress:
        print(file=sys.stderr)
    return written


def history_command(
    days: Annotated[float, typer.Option("--days", help="days of history ending now")] = 30,
    registry: Annotated[Path | None, typer.Option("--registry", help="registry YAML (default: the demo park)")] = None,
    influx_url: Annotated[str | None, typer.Option("--influx-url", help="InfluxDB URL (default: settings)")] = None,
    database: Annotated[str | None, typer.Option("--database", help="database (default: settings)")] = None,
    step_s: Annotated[int, typer.Option("--step-s", help="seconds between readings")] = MINUTE_S,
    seed: Annotated[int, typer.Option("--seed", help="the live simulator's seed (counters continue)")] = 0,
) -> None:
    """Write a realistic history of the park to InfluxDB `telemetry` (counters continue into live data)."""
    from smartpark.config import ConfigError, load_settings

    try:
        settings = load_settings(None)
        reg = load_registry(registry or settings.registry)
        gen = plan_history(reg, days, step_s=step_s, seed=seed)
    except (ConfigError, RegistryError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    url = influx_url or settings.influx.url
    db = database or settings.influx.database
    try:
        n = asyncio.run(write_history(gen, url, db))
    except httpx.HTTPError as exc:
        typer.echo(f"history: InfluxDB at {url}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"history: wrote {n:,} lines to {db} ({gen.plan.steps} steps of {step_s} s)")
