"""The ingest's MQTT connection: persistent MQTT 5 session, bounded in-flight window, manual PUBACK.

aiomqtt 2.5 has no public manual acknowledgement (aiomqtt issue #345). Its `Client` wraps a paho-mqtt 2.x
client in `Client._client`, and paho 2.x supports `manual_ack_set(True)` + `ack(mid, qos)`: with manual
ack on, paho's `_handle_publish` hands a QoS 1 message to `on_message` without sending PUBACK, and
`ack()` queues the PUBACK on the same socket, written by aiomqtt's writer callback in the event loop.
Both are confined to this module, checked when the client is built.

The bound on in-flight messages is enforced twice: the MQTT 5 *Receive Maximum* we announce makes the
broker stop sending once that many QoS 1 messages await our PUBACK (it queues the rest in our
persistent session), and `AckSequencer` stops the receiver at the same bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from smartpark.config import Settings

SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps our queue through a week-long outage
RECEIVE_MAXIMUM_LIMIT = 65_535  # the largest Receive Maximum MQTT 5 can express


class ManualAckUnsupported(RuntimeError):
    """The installed aiomqtt/paho do not expose what manual acknowledgement relies on."""


def make_client(settings: Settings, *, client_id: str | None = None,
                session_expiry_s: int = SESSION_EXPIRY_S) -> aiomqtt.Client:
    """Build (not connect) the ingest's aiomqtt client with manual acknowledgement switched on.

    Args:
        settings: mqtt section (address, credentials, TLS) and ingest section (client id, in-flight bound).
        client_id: overrides `settings.ingest.client_id`.
        session_expiry_s: how long the broker keeps our session (and queues for it) while we are away.

    Raises:
        ManualAckUnsupported: the installed aiomqtt no longer wraps a paho client with manual ack.
    """
    mqtt, ingest = settings.mqtt, settings.ingest
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = session_expiry_s
    props.ReceiveMaximum = min(ingest.max_in_flight, RECEIVE_MAXIMUM_LIMIT)
    tls = aiomqtt.TLSParameters(ca_certs=str(mqtt.tls_ca_file)) if mqtt.tls_ca_file else None
    client = aiomqtt.Client(
        mqtt.host, mqtt.port,
        identifier=client_id or ingest.client_id,
        username=mqtt.username,
        password=mqtt.password.get_secret_value() if mqtt.password else None,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,  # resume the session: unacknowledged messages come back to us
        keepalive=mqtt.keepalive_s,
        properties=props,
        tls_params=tls,
    )
    paho_client = getattr(client, "_client", None)
    if not isinstance(paho_client, paho.Client) or not hasattr(paho_client, "manual_ack_set"):
        raise ManualAckUnsupported("aiomqtt.Client no longer wraps a paho-mqtt 2.x client as `_client`; "
                                   "ingest needs paho's manual_ack_set/ack (see aiomqtt issue #345)")
    paho_client.manual_ack_set(True)
    if not isinstance(getattr(client, "_queue", None), asyncio.Queue):
        raise ManualAckUnsupported("aiomqtt.Client no longer keeps received messages in `_queue`")
    return client


async def messages(client: aiomqtt.Client) -> AsyncIterator[aiomqtt.Message]:
    """`client.messages` without its cost per message.

    aiomqtt's iterator creates a task and an `asyncio.wait` for every message (to race the queue against
    a disconnect): at one reading per message that was a fifth of ingest's CPU. Messages already queued
    are taken straight off aiomqtt's queue; only when it is empty do we wait through the iterator, which
    also raises `MqttError` once the connection is gone.

    Args:
        client: a connected client from `make_client`.
    """
    queue: asyncio.Queue[aiomqtt.Message] = client._queue
    disconnected = client._disconnected
    iterator = client.messages
    while True:
        if queue.empty() or disconnected.done():
            yield await iterator.__anext__()
        else:
            yield queue.get_nowait()


def ack(client: aiomqtt.Client, mid: int, qos: int) -> None:
    """Send the PUBACK of message `mid` now that it is settled (QoS 0 needs none).

    A failure (connection already gone) is ignored: the broker then still holds the message and
    redelivers it to the next session, where it is written again, idempotently.

    Args:
        client: a client from `make_client`.
        mid: the message's packet id (`aiomqtt.Message.mid`).
        qos: the message's QoS.
    """
    if qos > 0:
        client._client.ack(mid, qos)
