"""The ingest's MQTT connection: persistent MQTT 5 session, bounded in-flight window, manual PUBACK.

aiomqtt 2.5 has no public manual acknowledgement (aiomqtt issue #345). Its `Client` wraps a paho-mqtt 2.x
client in `Client._client`, and paho 2.x supports `manual_ack_set(True)` + `ack(mid, qos)`: with manual
ack on, paho's `_handle_publish` hands a QoS 1 message to `on_message` without sending PUBACK, and
`ack()` queues the PUBACK on the same socket, written by aiomqtt's writer callback in the event loop.
Both are confined to this module, checked when the client is built.

The bound on in-flight messages is enforced twice: the MQTT 5 *Receive Maximum* we announce makes the
broker stop sending once that many QoS 1 messages await our PUBACK (it queues the rest in our
persistent session), and `AckSequencer` stops the receiver at the same bound.

paho's receive path costs ~44 µs a message on this VM, more than ingest's own work on a 10-reading
message: one packet per readable event, a `recv` per header byte, and for MQTT 5 a `Properties` object
built and cleared for every PUBLISH (~14 µs); each PUBACK was its own packet, self-pipe wake-up and
`send`. `IngestPahoClient` keeps paho's protocol handling and changes only that: it reads the socket
in 64 KiB blocks and handles every complete packet in them per event, decodes a QoS 1 PUBLISH without
properties (what the broker sends us) straight into an `MQTTMessage`, and sends the PUBACKs settled
together as one write (`ack_many`). ~14 µs a message (`bench/ingest.py`'s docstring has the profile).
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator, Sequence

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from smartpark.config import Settings

SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps our queue through a week-long outage
RECEIVE_MAXIMUM_LIMIT = 65_535  # the largest Receive Maximum MQTT 5 can express


READ_BLOCK = 65_536  # bytes taken from the socket at once: ~40 ten-reading messages
PUBACK = 0x40
_PAHO_INTERNALS = ("_sock_recv", "_packet_read", "_packet_queue", "_handle_publish", "_handle_on_message",
                   "_loop_rc_handle", "_in_packet", "_manual_ack", "_protocol", "_sock")


class ManualAckUnsupported(RuntimeError):
    """The installed aiomqtt/paho do not expose what manual acknowledgement relies on."""


class IngestPahoClient(paho.Client):
    """paho's client with a buffered receive, a direct decode of plain QoS 1 PUBLISHes and batched PUBACKs.

    Installed on the paho client aiomqtt built (`make_client`); every other packet, and any PUBLISH that is
    not QoS 1 or carries MQTT 5 properties (topic alias, user properties...), goes through paho's own code.
    """

    _rbuf: bytes = b""
    _rpos: int = 0
    _refills: int = -1  # socket reads left in this `loop_read` (-1: no limit, paho's own behaviour)
    _no_properties = Properties(PacketTypes.PUBLISH)  # shared by every message that carried none

    def _sock_recv(self, bufsize: int) -> bytes:
        buf, pos = self._rbuf, self._rpos
        if pos >= len(buf):
            if self._refills == 0:  # the rest waits for the next readable event: the loop runs in between
                raise BlockingIOError
            self._refills -= 1
            buf = super()._sock_recv(READ_BLOCK)
            if not buf:
                return buf  # connection closed
            pos = 0
        self._rbuf, self._rpos = buf, pos + bufsize
        return buf[pos:pos + bufsize]

    def _sock_close(self) -> None:
        self._rbuf, self._rpos = b"", 0
        super()._sock_close()

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Handle every complete packet of one socket read (paho handles one packet per call).

        Args:
            max_packets: ignored (paho computes its own, 1 for a subscriber).
        """
        if self._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        self._refills = 1
        try:
            while True:
                rc = self._packet_read()
                if rc > 0:
                    return self._loop_rc_handle(rc)
                if rc == MQTTErrorCode.MQTT_ERR_AGAIN or self._sock is None or self._rpos >= len(self._rbuf):
                    return MQTTErrorCode.MQTT_ERR_SUCCESS
        finally:
            self._refills = -1

    def _handle_publish(self) -> MQTTErrorCode:
        header: int = self._in_packet["command"]
        packet: bytearray = self._in_packet["packet"]
        if (header & 0x06) != 0x02 or self._protocol != MQTTProtocolVersion.MQTTv5 or not self._manual_ack:
            return super()._handle_publish()
        topic_end = 2 + ((packet[0] << 8) | packet[1])
        if len(packet) < topic_end + 3 or topic_end == 2 or packet[topic_end + 2] != 0:
            return super()._handle_publish()  # properties (or a topic alias): paho decodes them
        message = paho.MQTTMessage(mid=(packet[topic_end] << 8) | packet[topic_end + 1],
                                   topic=bytes(packet[2:topic_end]))
        message.dup = bool(header & 0x08)
        message.qos = 1
        message.retain = bool(header & 0x01)
        message.properties = self._no_properties
        message.payload = bytes(packet[topic_end + 3:])
        message.timestamp = time.monotonic()
        self._handle_on_message(message)  # manual ack: the PUBACK goes out through `ack_many`
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: Sequence[int]) -> None:
        """Queue the PUBACKs of `mids` (QoS 1 messages, in order) as one write.

        Args:
            mids: packet ids of settled QoS 1 messages.
        """
        if mids:
            self._packet_queue(PUBACK, b"".join([struct.pack("!BBH", PUBACK, 2, mid) for mid in mids]), 0, 1)


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
    missing = [name for name in _PAHO_INTERNALS if not hasattr(paho_client, name)]
    if type(paho_client) is not paho.Client or missing:
        raise ManualAckUnsupported(f"paho-mqtt's Client changed (missing {missing}); IngestPahoClient "
                                   "relies on paho 2.x internals: pin paho-mqtt or update ingest/mqtt.py")
    paho_client.__class__ = IngestPahoClient
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


def ack(client: aiomqtt.Client, mids: Sequence[int]) -> None:
    """Send the PUBACKs of QoS 1 messages `mids`, now settled, in one write.

    A failure (connection already gone) is ignored: the broker then still holds the messages and
    redelivers them to the next session, where they are written again, idempotently.

    Args:
        client: a client from `make_client`.
        mids: the messages' packet ids (`aiomqtt.Message.mid`), in arrival order.
    """
    paho_client = client._client
    assert isinstance(paho_client, IngestPahoClient), "use a client from make_client"
    paho_client.ack_many(mids)
