"""Shared helpers of the benches (not a bench itself: `bench/summary.py` skips files starting with `_`)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import math
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/x.py` puts bench/ on the path, not the project
    sys.path.insert(0, str(ROOT))

# Eight fields per reading, all from the point dictionary, values inside their plausible ranges.
METER_FIELDS = ("active_power_kw", "reactive_power_kvar", "voltage_v", "current_a", "power_factor",
                "frequency_hz", "energy_import_kwh", "energy_export_kwh")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def big_registry(devices: int, *, parks: int = 10, enterprises_per_park: int = 10, devices_per_gateway: int = 50,
                 prefix: str = "b") -> dict[str, Any]:
    """A registry (plain data) with `devices` meters spread over parks, enterprises and gateways."""
    per_ent = max(1, math.ceil(devices / (parks * enterprises_per_park)))
    out_parks = []
    n = 0
    for p in range(parks):
        ents = []
        for e in range(enterprises_per_park):
            gws = []
            left = min(per_ent, devices - n)
            g = 0
            while left > 0:
                k = min(left, devices_per_gateway)
                devs = [{"id": f"{prefix}d{n + i}", "role": "load_meter", "template": "acrel_dtsd1352",
                         "poll_interval_s": 1.0} for i in range(k)]
                gws.append({"id": f"{prefix}p{p}e{e}g{g}", "devices": devs})
                n += k
                left -= k
                g += 1
            if gws:
                ents.append({"id": f"{prefix}p{p}e{e}", "name": f"ent {p}.{e}", "land_area_mu": 100, "gateways": gws})
        if ents:
            out_parks.append({"id": f"{prefix}p{p}", "name": f"park {p}", "enterprises": ents})
    return {"version": 1, "parks": out_parks}


def device_topics(registry: dict[str, Any]) -> list[str]:
    """`sp/v1/{park}/{enterprise}/{device}/telemetry` of every device of a plain-data registry."""
    return [f"sp/v1/{p['id']}/{e['id']}/{d['id']}/telemetry"
            for p in registry["parks"] for e in p["enterprises"] for g in e["gateways"] for d in g["devices"]]


def write_yaml(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def meter_fields(i: int) -> dict[str, float]:
    """Eight plausible meter values, varied by `i` so they do not compress to nothing."""
    return {"active_power_kw": 100.0 + (i % 997) * 0.25, "reactive_power_kvar": 20.0 + (i % 89) * 0.5,
            "voltage_v": 380.0 + (i % 13) * 0.1, "current_a": 150.0 + (i % 211) * 0.3,
            "power_factor": 0.9 + (i % 9) * 0.01, "frequency_hz": 50.0 + (i % 5) * 0.01,
            "energy_import_kwh": 100000.0 + i * 0.125, "energy_export_kwh": 0.0}


def influx_query(url: str, db: str, q: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/query", params={"db": db, "q": q, "epoch": "ms"}, timeout=120)
    r.raise_for_status()
    rows: list[dict[str, Any]] = []
    for result in r.json()["results"]:
        if "error" in result:
            raise RuntimeError(result["error"])
        for series in result.get("series", []):
            for values in series["values"]:
                rows.append(dict(zip(series["columns"], values, strict=True)))
    return rows


def influx_count(url: str, db: str, measurement: str = "telemetry", field: str = "active_power_kw") -> int:
    rows = influx_query(url, db, f'SELECT count("{field}") FROM "{measurement}"')
    return int(rows[0]["count"]) if rows else 0


def influx_create(url: str, db: str) -> None:
    httpx.post(f"{url}/query", data={"q": f'CREATE DATABASE "{db}"'}, timeout=30).raise_for_status()


async def raw_influx_write(url: str, db: str, lines: list[str], *, batch: int = 5000, writers: int = 2) -> float:
    """Write `lines` with `writers` concurrent gzip'd HTTP writers; returns lines/s (the database alone)."""
    bodies = [gzip.compress("\n".join(lines[i:i + batch]).encode(), compresslevel=1)
              for i in range(0, len(lines), batch)]  # prepared up front: only InfluxDB is timed
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)

    async def writer(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            r = await http.post("/write", params={"db": db, "precision": "ms"}, content=body,
                                headers={"Content-Encoding": "gzip"})
            if r.status_code >= 300:
                raise RuntimeError(f"raw write failed: HTTP {r.status_code} {r.text[:200]}")

    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        started = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for _ in range(writers):
                tg.create_task(writer(http))
        elapsed = time.perf_counter() - started
    return len(lines) / elapsed


def prometheus_values(url: str) -> dict[str, float]:
    """`name -> value` of unlabelled samples from a Prometheus text endpoint (empty if it does not answer)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.partition(" ")
            out[name] = float(value)
    return out


def subprocess_env(**settings: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(settings)
    return env


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def result(name: str, value: float | str, fmt: str = ".3f") -> None:
    """Print one `name: value` result line."""
    print(f"{name}: {value if isinstance(value, str) else format(value, fmt)}", flush=True)


@contextlib.contextmanager
def ingest_process(env: dict[str, str], metrics_port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m ingest` until the block exits; from `INGEST_FROM` (a folder holding another `ingest/`) if set."""
    cwd = os.environ.get("INGEST_FROM") or ROOT  # `-m` looks in the working directory first
    proc = subprocess.Popen([sys.executable, "-m", "ingest", "--metrics-port", str(metrics_port)], env=env,
                            cwd=cwd, stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_metric(url: str, name: str, at_least: float, proc: subprocess.Popen[bytes], timeout: float,
                poll_s: float = 0.02) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ingest exited with code {proc.returncode}")
        if prometheus_values(url).get(name, 0.0) >= at_least:
            return time.perf_counter()
        time.sleep(poll_s)
    raise TimeoutError(f"{name} did not reach {at_least} within {timeout} s")


def ingest_env(registry_path: Path, mq_port: int, influx_url: str, db: str, tag: str) -> dict[str, str]:
    return subprocess_env(
        SMARTPARK_REGISTRY=str(registry_path), SMARTPARK_LOG_LEVEL="WARNING",
        SMARTPARK_MQTT__PORT=str(mq_port), SMARTPARK_INFLUX__URL=influx_url, SMARTPARK_INFLUX__DATABASE=db,
        SMARTPARK_INGEST__GROUP=f"g{tag}", SMARTPARK_INGEST__CLIENT_ID=f"ingest-{tag}",
        SMARTPARK_INGEST__BATCH_POINTS=os.environ.get("BENCH_INGEST_BATCH_POINTS", "5000"),
    )
