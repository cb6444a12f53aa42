"""`make bench`: run every bench in bench/ briefly and print one table of their results.

Each bench is run as its own process with its short option (`--quick` where it has one, else the short
arguments below), and its `name: value` result lines are collected. A bench that fails or times out is
listed with its status and the tail of its output, and the others still run. Files starting with `_` are
helpers, not benches. Exit code 1 when any bench failed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
# Short arguments of benches without `--quick`.
SHORT_ARGS: dict[str, list[str]] = {
    "pipeline": ["--trials", "5"],
    "alert_latency": ["--trials", "10"],
    "faults": ["--outage", "5"],
}
ORDER = ["ingest", "edge", "scaleout", "pipeline", "e2e", "analytics", "alert_latency", "faults"]
RESULT_LINE = re.compile(r"^([A-Za-z0-9_.]+):\s+(\S.*)$")


def benches() -> list[Path]:
    found = [p for p in BENCH_DIR.glob("*.py") if not p.name.startswith("_") and p.name != "summary.py"]
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(found, key=lambda p: (rank.get(p.stem, len(ORDER)), p.stem))


def short_args(path: Path) -> list[str]:
    if "--quick" in path.read_text():
        return ["--quick"]
    return SHORT_ARGS.get(path.stem, [])


def results_of(output: str) -> list[tuple[str, str]]:
    """`name: value` lines (comments and progress lines left out)."""
    out = []
    for line in output.splitlines():
        m = RESULT_LINE.match(line.strip())
        if m and not line.startswith("#"):
            out.append((m.group(1), m.group(2)))
    return out


def run(path: Path, timeout_s: float) -> tuple[str, float, list[tuple[str, str]], str]:
    cmd = [sys.executable, str(path), *short_args(path)]
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        text = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode(errors="replace")
        return f"timeout {timeout_s:.0f}s", time.monotonic() - started, results_of(text), text[-1500:]
    status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
    tail = (proc.stdout + proc.stderr)[-1500:] if proc.returncode else ""
    return status, time.monotonic() - started, results_of(proc.stdout), tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=900, help="seconds per bench")
    parser.add_argument("--only", default="", help="comma-separated bench names (default: all)")
    args = parser.parse_args()
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    rows: list[tuple[str, str, str]] = []
    failed = False
    for path in benches():
        if only and path.stem not in only:
            continue
        print(f"running {path.name} {' '.join(short_args(path))} ...", flush=True)
        status, elapsed, results, tail = run(path, args.timeout)
        print(f"  {status} in {elapsed:.0f} s", flush=True)
        if status != "ok":
            failed = True
            print("  " + tail.replace("\n", "\n  "), flush=True)
        rows.append((path.stem, f"({status}, {elapsed:.0f} s)", ""))
        rows.extend((path.stem, name, value) for name, value in results)
    width = [max(len(r[i]) for r in rows) if rows else 0 for i in range(3)]
    print()
    print(f"{'bench':<{width[0]}}  {'result':<{width[1]}}  value")
    print(f"{'-' * width[0]}  {'-' * width[1]}  {'-' * max(5, width[2])}")
    for bench, name, value in rows:
        print(f"{bench:<{width[0]}}  {name:<{width[1]}}  {value}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
