"""Fault benchmark: the scenarios of tests/faults with long outages (30 s), one table.

    .venv/bin/python bench/faults.py [--outage 30] [--only broker_outage,edge_kill]

Starts its own Mosquitto (with accounts and ACL) and influxd under a temporary folder, runs every scenario
on the real pipeline and prints: scenario, readings sent, stored, duplicates (deliveries beyond the first,
absorbed by idempotent writes), lost, extra, recovery time (fault cleared → everything produced before it
stored). The last lines are `readings_sent: N`, `readings_lost: N`, `scenarios_passed: K/M`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.faults import scenarios
from tests.faults.scenarios import TABLE_HEADER, FaultBed, ScenarioResult, fault_bed


def plan(outage_s: float) -> dict[str, dict[str, float | str]]:
    """Scenario name -> keyword arguments (the long versions)."""
    return {
        "broker_outage": {"outage_s": outage_s, "order": "natural"},
        "broker_outage_ingest_first": {"outage_s": outage_s, "order": "ingest_first"},
        "influx_outage": {"outage_s": outage_s},
        "ingest_kill": {"down_s": outage_s / 3, "warmup_s": 5.0},
        "edge_kill": {"down_s": outage_s / 3, "queue_s": outage_s / 3},
        "network_blackhole": {"outage_s": outage_s},
        "malformed_flood": {"rounds": 500},
        "intruder": {},
        "shared_sub_strand": {"down_s": outage_s},
    }


FUNCTIONS = {
    "broker_outage": scenarios.broker_outage,
    "broker_outage_ingest_first": scenarios.broker_outage,
    "influx_outage": scenarios.influx_outage,
    "ingest_kill": scenarios.ingest_kill,
    "edge_kill": scenarios.edge_kill,
    "network_blackhole": scenarios.network_blackhole,
    "malformed_flood": scenarios.malformed_flood,
    "intruder": scenarios.intruder,
    "shared_sub_strand": scenarios.shared_subscription_strand,
}


def run(bed: FaultBed, name: str, kwargs: dict[str, float | str]) -> ScenarioResult:
    started = time.monotonic()
    try:
        result = asyncio.run(FUNCTIONS[name](bed, **kwargs))  # type: ignore[arg-type]
    except Exception as exc:  # a scenario that breaks is a failed row, the others still run
        result = ScenarioResult(name, notes={"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    result.notes["wall_s"] = round(time.monotonic() - started, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=30.0, help="outage length in seconds (default 30)")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    todo = plan(args.outage)
    if args.only:
        unknown = set(args.only.split(",")) - set(todo)
        if unknown:
            parser.error(f"unknown scenarios {sorted(unknown)}; known: {', '.join(todo)}")
        todo = {k: v for k, v in todo.items() if k in args.only.split(",")}
    results: list[ScenarioResult] = []
    with tempfile.TemporaryDirectory(prefix="smartpark-faults-") as tmp, fault_bed(Path(tmp)) as bed:
        print(TABLE_HEADER, flush=True)
        for name, kwargs in todo.items():
            result = run(bed, name, kwargs)
            results.append(result)
            print(result.row(), flush=True)
            detail = {k: v for k, v in result.notes.items() if k != "ok"}
            print(f"    {detail}", flush=True)
    sent = sum(r.sent for r in results)
    lost = sum(r.lost for r in results)
    passed = sum(r.passed for r in results)
    print(f"readings_sent: {sent}")
    print(f"readings_lost: {lost}")
    print(f"scenarios_passed: {passed}/{len(results)}")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
