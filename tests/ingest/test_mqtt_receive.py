"""The ingest's MQTT client (ingest.mqtt) against the real Mosquitto: what its buffered receive and direct
PUBLISH decode hand over is exactly what was published, whatever its size, QoS or properties, and the PUBACKs
it sends in one write settle exactly the messages named."""

from __future__ import annotations

import asyncio

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from deploy.services import RunningService
from ingest.mqtt import IngestPahoClient, ManualAckUnsupported, ack, make_client, messages
from smartpark.config import Settings, load_settings
from tests.ingest.helpers import TEST_SESSION_EXPIRY_S, mqtt_client


def settings_for(broker: RunningService, uid: str) -> Settings:
    return load_settings(None, mqtt={"host": broker.host, "port": broker.port},
                         ingest={"group": f"g{uid}", "client_id": f"rx-{uid}", "max_in_flight": 5000})


async def take(client: aiomqtt.Client, n: int, within: float = 10.0) -> list[aiomqtt.Message]:
    got: list[aiomqtt.Message] = []
    async with asyncio.timeout(within):
        async for message in messages(client):
            got.append(message)
            if len(got) == n:
                return got
    raise AssertionError("message stream ended")


async def nothing_more(client: aiomqtt.Client, wait_s: float = 0.5) -> bool:
    try:
        async with asyncio.timeout(wait_s):
            await anext(messages(client))
    except TimeoutError:
        return True
    return False


async def test_every_message_arrives_intact_and_acks_settle_exactly_those_named(
        broker: RunningService, uid: str) -> None:
    settings = settings_for(broker, uid)
    topic = f"sp/v1/p{uid}/e/d/telemetry"
    user_props = Properties(PacketTypes.PUBLISH)
    user_props.UserProperty = ("origin", "test")
    user_props.MessageExpiryInterval = 600
    sent: list[tuple[bytes, int, Properties | None]] = [(b"small %d" % i, 1, None) for i in range(3000)]
    sent += [(bytes(range(256)) * 800, 1, None),  # 204,800 bytes: several socket reads for one packet
             (b"with properties", 1, user_props),  # paho's own decoder takes this one
             (b"at most once", 0, None),
             (b"", 1, None)]
    client = make_client(settings, session_expiry_s=TEST_SESSION_EXPIRY_S)
    assert isinstance(client._client, IngestPahoClient)
    async with client:
        await client.subscribe(f"sp/v1/p{uid}/+/+/telemetry", qos=1)
        async with mqtt_client(broker, identifier=f"pub-{uid}") as pub:
            await asyncio.gather(*(pub.publish(topic, body, qos=qos, properties=props) for body, qos, props in sent))
        got = await take(client, len(sent))
        assert sorted(m.payload for m in got) == sorted(body for body, _, _ in sent)  # type: ignore[type-var]
        assert {m.topic.value for m in got} == {topic}
        assert {m.payload: m.qos for m in got} == {body: qos for body, qos, _ in sent}
        with_props = next(m for m in got if m.payload == b"with properties")
        assert with_props.properties is not None and with_props.properties.UserProperty == [("origin", "test")]
        acked = [m.mid for m in got if m.qos == 1 and m.payload != b"small 7"]
        ack(client, acked)
        await asyncio.sleep(0.3)  # the PUBACKs reach the broker before we leave
    client = make_client(settings, session_expiry_s=TEST_SESSION_EXPIRY_S)
    async with client:  # the persistent session resumes: only the one message not acknowledged comes back
        again = await take(client, 1)
        assert again[0].payload == b"small 7"
        ack(client, [again[0].mid])
        assert await nothing_more(client)


async def test_make_client_refuses_a_paho_it_does_not_know(broker: RunningService, uid: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(paho.Client, "_handle_publish")
    with pytest.raises(ManualAckUnsupported, match="paho-mqtt's Client changed"):
        make_client(settings_for(broker, uid))
