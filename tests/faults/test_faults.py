"""Nothing lost: one fault per test on the real pipeline; every reading the edge agent produced is in InfluxDB
exactly once (by device and timestamp) with its values, and nothing else is. Scenarios in scenarios.py (shared
with bench/faults.py, which runs them with 30 s outages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.services import influxd
from tests.faults import scenarios
from tests.faults.scenarios import FaultBed, ScenarioResult, fault_bed

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _nothing_lost(res: ScenarioResult) -> None:
    assert res.sent > 20, res
    assert res.lost == 0, f"{res.lost} of {res.sent} readings lost, e.g. {res.lost_keys[:5]}; {res.notes}"
    assert res.extra == 0, res
    assert res.mismatched == 0, res
    assert res.stored == res.sent


async def test_broker_outage_when_ingest_resubscribes_first(bed: FaultBed) -> None:
    res = await scenarios.broker_outage(bed, outage_s=5.0, order="ingest_first")
    _nothing_lost(res)
    assert res.recovery_s is not None and res.recovery_s < 10


# After a restart Mosquitto 2.0.11 restores ingest's session without its $share subscription, and answers the
# edge's backlog with PUBACK 0x10 "no matching subscribers" until ingest re-subscribes: the edge keeps those
# readings queued (edge_agent/puback.py) and sends them again once someone is subscribed.
async def test_broker_outage_when_edge_reconnects_first(bed: FaultBed) -> None:
    res = await scenarios.broker_outage(bed, outage_s=5.0, order="edge_first")
    assert res.sent > 20
    assert res.lost == 0, f"{res.lost} of {res.sent} lost, from {res.notes['lost_s_after_stop']} s after the stop"


@pytest.mark.xfail(strict=True, reason=(
    "Mosquitto 2.0.11 limitation: after a restart it has forgotten ingest's $share subscription; a plain "
    "(non-shared) telemetry subscriber that is back first makes the broker acknowledge the edge's backlog "
    "with success and deliver it to that subscriber alone, so what ingest missed until it re-subscribed is "
    "lost. Closing it needs a broker that persists shared subscriptions or seq-gap replay from the edge."))
async def test_broker_outage_with_a_plain_observer_loses_what_ingest_missed(bed: FaultBed) -> None:
    res = await scenarios.broker_outage(bed, outage_s=5.0, order="edge_first", observer=True)
    assert res.sent > 20
    assert res.lost == 0, f"{res.lost} of {res.sent} lost, from {res.notes['lost_s_after_stop']} s after the stop"


async def test_influxdb_outage(tmp_path: Path, uid: str) -> None:
    # An influxd of this test's own: restarting a shared one would leave a process the leak check blames on us.
    with influxd(tmp_path / "influxd") as own_influx, fault_bed(tmp_path / "bed", own_influx, uid) as bed:
        res = await scenarios.influx_outage(bed, outage_s=5.0)
    _nothing_lost(res)
    assert res.recovery_s is not None and res.recovery_s < 15


async def test_ingest_killed_and_restarted(bed: FaultBed) -> None:
    res = await scenarios.ingest_kill(bed, down_s=2.0)
    _nothing_lost(res)


async def test_edge_agent_killed_with_a_full_store(bed: FaultBed) -> None:
    res = await scenarios.edge_kill(bed, down_s=2.0)
    _nothing_lost(res)
    assert res.notes["in_store_at_kill"] > 0, "the kill must catch readings waiting in the store"
    assert res.notes["queued_lost"] == 0
    assert res.notes["store_rows_at_end"] == 0


async def test_network_black_hole_between_edge_and_broker(bed: FaultBed) -> None:
    res = await scenarios.network_blackhole(bed, outage_s=8.0)
    _nothing_lost(res)
    assert res.notes["queued_at_heal"] > 0, "the edge must have noticed the partition and queued"
    assert res.notes["connections"] >= 2, "the edge must have reconnected"


async def test_malformed_flood_goes_to_dead_letter_and_good_readings_are_stored(bed: FaultBed) -> None:
    res = await scenarios.malformed_flood(bed, rounds=50)
    _nothing_lost(res)
    n = res.notes
    assert n["malformed_missing"] == 0 and n["dead_lettered"] == n["malformed_sent"] == 350, n
    assert n["reasons"] == n["expected_reasons"]


async def test_gateway_publishing_into_another_enterprise_is_refused(bed: FaultBed) -> None:
    res = await scenarios.intruder(bed)
    _nothing_lost(res)
    # MQTT 5: PUBACK reason 0x87 Not authorized; MQTT 3.1.1: a plain PUBACK, the message silently dropped.
    assert res.notes["puback_reason_codes"] == {"v5": 0x87, "v3.1.1": 0}
    assert res.notes["leaked_to_influx"] == 0
    assert res.notes["leaked_to_subscribers"] == 0


async def test_shared_subscription_strands_messages_until_the_worker_returns(bed: FaultBed) -> None:
    """Mosquitto 2.0.11 keeps a killed worker's share of the stream (its in-flight messages *and* new ones,
    round-robin) in its persistent session: the healthy worker never sees them; they are stored once the
    killed worker is back with the same client id, and not one is lost."""
    res = await scenarios.shared_subscription_strand(bed, down_s=4.0)
    _nothing_lost(res)
    assert res.notes["stranded_while_down"] > 0
    assert res.notes["stranded_produced_after_kill"] > 0, "new messages keep going to the dead worker's session"
    assert res.recovery_s is not None and res.recovery_s < 5
