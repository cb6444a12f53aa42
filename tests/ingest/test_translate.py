"""Validation and translation of single messages (pure, no broker)."""

from __future__ import annotations

import pytest

from ingest.translate import Translator
from parkmodel.codec import CodecError, encode, telemetry_payload
from tests.conftest import make_registry

NOW_MS = 1_750_000_000_000


def translator(uid: str) -> Translator:
    return Translator(make_registry(uid, enterprises=2), clock=lambda: NOW_MS / 1000)


def test_telemetry_lines_carry_tags_floats_and_ms(uid: str) -> None:
    t = translator(uid)
    lines = t.translate(f"sp/v1/p{uid}/e{uid}-0/m{uid}/telemetry",
                        telemetry_payload(3, [(NOW_MS - 1000, {"active_power_kw": 12, "voltage_v": 230.5})]))
    assert lines == [f"telemetry,device=m{uid},enterprise=e{uid}-0,park=p{uid},role=grid_meter "
                     f"active_power_kw=12.0,voltage_v=230.5 {NOW_MS - 1000}"]


@pytest.mark.parametrize(("topic", "reason"), [
    ("sp/v1/p{u}/e{u}-0/nobody{u}/telemetry", "unknown_device"),
    ("sp/v1/p{u}/e{u}-1/m{u}/telemetry", "topic"),  # exists, but under another enterprise
    ("sp/v1/q{u}/e{u}-0/m{u}/telemetry", "topic"),  # exists, but under another park
    ("sp/v1/p{u}/e{u}-0/m{u}/telemetry/extra", "topic"),
    ("sp/v1/p{u}/e{u}-0/M{u}/telemetry", "topic"),
    ("sp/v1/p{u}/e{u}-0/m{u}/kpi", "topic"),
    ("sp/v1/p{u}/e{u}-0/nogw{u}/status", "unknown_device"),
    ("sp/v1/p{u}/e{u}-1/g{u}-0/status", "topic"),
])
def test_topic_and_registry_rejections(uid: str, topic: str, reason: str) -> None:
    with pytest.raises(CodecError) as err:
        translator(uid).translate(topic.format(u=uid), telemetry_payload(1, [(NOW_MS, {"active_power_kw": 1})]))
    assert err.value.reason == reason


def test_rejected_topics_are_not_cached_but_good_ones_are(uid: str) -> None:
    t = translator(uid)
    registry_topics = set(t._routes)  # telemetry routes of the registry's devices, resolved up front
    assert f"sp/v1/p{uid}/e{uid}-0/m{uid}/telemetry" in registry_topics
    for n in range(50):
        with pytest.raises(CodecError):
            t.translate(f"sp/v1/p{uid}/e{uid}-0/x{n}/telemetry", b"{}")
    good = f"sp/v1/p{uid}/e{uid}-0/m{uid}/telemetry"
    t.translate(good, telemetry_payload(1, [(NOW_MS, {"active_power_kw": 1})]))
    event = f"sp/v1/p{uid}/e{uid}-0/m{uid}/event"
    t.translate(event, encode({"v": 1, "seq": 0, "ts": NOW_MS, "type": "smoke_alarm"}))
    assert set(t._routes) == registry_topics | {event}


def test_event_line(uid: str) -> None:
    line = translator(uid).translate(f"sp/v1/p{uid}/e{uid}-0/pv{uid}/event", encode(
        {"v": 1, "seq": 9, "ts": NOW_MS, "type": "smoke_alarm", "state": 0, "input": 12, "detail": 'a "b"'}))
    assert line == [f"event,device=pv{uid},enterprise=e{uid}-0,park=p{uid},role=pv,type=smoke_alarm "
                    f'state=0i,seq=9i,input=12i,detail="a \\"b\\"" {NOW_MS}']


def test_status_lines_and_last_will(uid: str) -> None:
    t = translator(uid)
    topic = f"sp/v1/p{uid}/e{uid}-0/g{uid}-0/status"
    online = t.translate(topic, encode({"v": 1, "state": "online", "ts": NOW_MS,
                                        "devices": {f"m{uid}": {"online": True}}}))
    assert online == [f"device_status,device=m{uid},enterprise=e{uid}-0,gateway=g{uid}-0,park=p{uid} "
                      f'online=1i,error="" {NOW_MS}']
    assert t.translate(topic, encode({"v": 1, "state": "online", "ts": NOW_MS, "devices": {}})) == []
    will = t.translate(topic, encode({"v": 1, "state": "offline", "ts": 0, "devices": {}}))
    assert len(will) == 2 and all(f'online=0i,error="gateway offline" {NOW_MS}' in x for x in will)
    with pytest.raises(CodecError) as err:
        t.translate(topic, encode({"v": 1, "state": "online", "ts": NOW_MS + 86_400_000}))
    assert err.value.reason == "timestamp"
