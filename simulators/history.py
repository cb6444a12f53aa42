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
import contextlib
import random
import re
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
from smartpark.config import InfluxSettings, influx_duration_s
from smartpark.influx_schema import SchemaError, ensure_schema

MINUTE_S = 60
DAY_S = 86_400
#: Lines per gzip'd POST to /write.
WRITE_BATCH_LINES = 25_000
#: A day this close to the raw retention's edge goes to the rollup policy: it would age out while written.
RETENTION_MARGIN_S = 3600
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


_DATABASE_NAME = re.compile(r"^[A-Za-z0-9_]+$")  # as smartpark.config.InfluxSettings.database


def history_influx(influx: InfluxSettings, url: str | None = None, database: str | None = None) -> InfluxSettings:
    """The settings' InfluxDB section with the command line's `--influx-url` / `--database`, validated.

    Raises:
        ValueError: the database name is not letters, digits and `_` (it is quoted into InfluxQL).
    """
    if database is not None and not _DATABASE_NAME.match(database):
        raise ValueError(f"--database {database!r}: expected letters, digits and _ only (pattern ^[A-Za-z0-9_]+$)")
    return influx.model_copy(update={k: v for k, v in (("url", url), ("database", database)) if v is not None})


def _policy_of_day(gen: HistoryGenerator, influx: InfluxSettings, day_start_s: int, now_s: float) -> str | None:
    """Where a day goes: the default (raw) policy if all of it is inside the raw retention, where backfill and
    the live catch-up read it; else the 1-minute rollup policy, whose resolution the history has."""
    if day_start_s >= now_s - influx_duration_s(influx.raw_retention) + RETENTION_MARGIN_S:
        return None
    if gen.plan.step_s < MINUTE_S:
        raise ValueError(f"days older than the raw retention ({influx.raw_retention}) go to {influx.rollup_1m_rp}, "
                         f"whose resolution is 1 minute: step_s {gen.plan.step_s} is finer; use 60 or more")
    return influx.rollup_1m_rp


async def write_history(gen: HistoryGenerator, influx: InfluxSettings, *, progress: bool = True,
                        timeout_s: float = 120.0, now_s: float | None = None) -> int:
    """Set up the schema, generate the history and write it to `telemetry`, gzip'd in batches; the generation
    of the next day runs in a worker thread while the current one is written.

    Days inside the raw retention go to the default policy; older ones (InfluxDB would drop them there) to
    `influx.rollup_1m_rp`.

    Args:
        gen: the history (`plan_history`).
        influx: URL, database, credentials and retention policies.
        progress: print progress to stderr.
        timeout_s: per request.
        now_s: the time that retention is measured from (default: now).

    Returns:
        The number of lines written.

    Raises:
        httpx.HTTPError: InfluxDB could not be reached or refused a write.
        SchemaError: InfluxDB refused the schema set-up.
    """
    import gzip

    written = 0
    started = time.monotonic()
    now = time.time() if now_s is None else now_s
    days = list(gen._days())
    policies = [_policy_of_day(gen, influx, start, now) for start, _ in days]
    it = gen.lines()
    auth = (httpx.BasicAuth(influx.username, influx.password.get_secret_value())
            if influx.username and influx.password else None)
    async with httpx.AsyncClient(base_url=influx.url.rstrip("/"), timeout=timeout_s, auth=auth) as client:
        await ensure_schema(client, influx)
        nxt: asyncio.Future[tuple[int, list[str]] | None] | None = None
        try:
            nxt = asyncio.ensure_future(asyncio.to_thread(next, it, None))
            for i in range(len(days)):
                item = await nxt
                nxt = None
                if item is None:
                    break
                if i + 1 < len(days):
                    nxt = asyncio.ensure_future(asyncio.to_thread(next, it, None))
                _, lines = item
                params = {"db": influx.database, "precision": "ms"}
                if policies[i] is not None:
                    params["rp"] = policies[i]
                for k in range(0, len(lines), WRITE_BATCH_LINES):
                    body = gzip.compress("\n".join(lines[k:k + WRITE_BATCH_LINES]).encode(), compresslevel=1)
                    w = await client.post("/write", params=params, content=body, headers={"Content-Encoding": "gzip"})
                    if w.status_code != 204:
                        raise httpx.HTTPStatusError(f"InfluxDB refused the write: HTTP {w.status_code}: {w.text}",
                                                    request=w.request, response=w)
                written += len(lines)
                if progress:
                    rate = written / max(time.monotonic() - started, 1e-9)
                    print(f"\rhistory: day {i + 1}/{len(days)}, {written:,} lines, {rate:,.0f} lines/s",
                          end="", file=sys.stderr, flush=True)
        finally:
            if nxt is not None:  # a failed write: the day being generated is not needed, but its thread must end
                nxt.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await nxt
    if progress:
        print(file=sys.stderr)
    return written


def history_command(
    days: Annotated[float, typer.Option("--days", help="days of history ending now")] = 30,
    registry: Annotated[Path | None, typer.Option("--registry", help="registry YAML (default: the demo park)")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="SmartPark YAML config (influx: section)")]
    = None,
    influx_url: Annotated[str | None, typer.Option("--influx-url", help="InfluxDB URL (default: settings)")] = None,
    database: Annotated[str | None, typer.Option("--database", help="database (default: settings)")] = None,
    step_s: Annotated[int, typer.Option("--step-s", help="seconds between readings")] = MINUTE_S,
    seed: Annotated[int, typer.Option("--seed", help="the live simulator's seed (counters continue)")] = 0,
) -> None:
    """Write a realistic history of the park to InfluxDB `telemetry` (counters continue into live data)."""
    from smartpark.config import ConfigError, load_settings

    try:
        settings = load_settings(config)
        influx = history_influx(settings.influx, influx_url, database)
        reg = load_registry(registry or settings.registry)
        gen = plan_history(reg, days, step_s=step_s, seed=seed)
    except (ConfigError, RegistryError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    try:
        n = asyncio.run(write_history(gen, influx))
    except (httpx.HTTPError, SchemaError, ValueError) as exc:
        typer.echo(f"history: InfluxDB at {influx.url}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"history: wrote {n:,} lines to {influx.database} ({gen.plan.steps} steps of {step_s} s)")
