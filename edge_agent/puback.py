"""PUBACK reason codes, which aiomqtt 2.5 discards.

An MQTT 5 broker acknowledges a QoS 1 publish with a reason code. 0x10 "no matching subscribers" means
the broker accepted the message and gave it to nobody: after a broker restart Mosquitto 2.0.11 restores
ingest's session without its shared subscription, so until ingest subscribes again every reading the edge
sends is acknowledged — and lost. Codes of 0x80 and above are refusals (not authorized, quota exceeded).
In both cases the readings must stay in the store-and-forward queue.

aiomqtt keeps the paho client as `_client` and calls its `publish` and `on_publish`; we wrap both (the only
private access of the edge agent): the message id of each publish is remembered in the publishing task's
context, the reason code of each PUBACK by message id.

Telemetry takes a cheaper path (`send` and `on_ack`): a hundred awaited `client.publish` calls cost a task,
an event, a `wait_for` and aiomqtt's pending-call bookkeeping each, a visible share of the agent at a thousand
devices. `send` hands the message to paho and returns its id; `on_ack(mid, reason)` is called with the PUBACK.
The broker's Receive Maximum (MQTT 5 CONNACK) is kept, since exceeding it is a protocol error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import aiomqtt
from paho.mqtt.client import MQTT_ERR_SUCCESS
from paho.mqtt.reasoncodes import ReasonCode

NO_MATCHING_SUBSCRIBERS = 0x10
#: What MQTT 5 assumes when the CONNACK names no Receive Maximum (and what MQTT 3.1.1 has no notion of).
DEFAULT_RECEIVE_MAXIMUM = 65_535
_last_mid: ContextVar[int | None] = ContextVar("edge_last_publish_mid", default=None)


class NotDelivered(aiomqtt.MqttError):
    """The broker acknowledged a publish without delivering it; its readings stay queued."""

    def __init__(self, topic: str, reason: ReasonCode) -> None:
        super().__init__(f"broker did not deliver {topic}: {reason} (0x{reason.value:02x})")
        self.topic = topic
        self.reason = reason


class PubackTracker:
    """Record PUBACK reason codes of `client`; `check(topic)` after each `await client.publish(...)`.

    Args:
        client: an aiomqtt client, before or after connecting.
    """

    def __init__(self, client: aiomqtt.Client) -> None:
        self._aiomqtt = client
        paho = client._client  # aiomqtt exposes no reason codes (see module docstring)
        if not callable(getattr(paho, "publish", None)) or paho.on_publish is None:
            raise RuntimeError("aiomqtt's internals changed: cannot track PUBACK reason codes")
        self._undelivered: dict[int, ReasonCode] = {}
        #: Receives the PUBACK of every message sent with `send` (message id, reason code or None).
        self.on_ack: Callable[[int, ReasonCode | None], None] | None = None
        #: Messages the broker accepts unacknowledged at once (its CONNACK's Receive Maximum).
        self.receive_maximum = DEFAULT_RECEIVE_MAXIMUM
        self._sent: set[int] = set()
        publish, on_publish, on_connect = paho.publish, paho.on_publish, paho.on_connect
        self._publish = publish

        def tracked_publish(*args: Any, **kwargs: Any) -> Any:
            info = publish(*args, **kwargs)
            _last_mid.set(info.mid)
            return info

        def tracked_on_publish(c: Any, userdata: Any, mid: int, reason: ReasonCode | None, props: Any) -> None:
            if mid in self._sent:
                self._sent.discard(mid)
                if self.on_ack is not None:
                    self.on_ack(mid, reason)
                return
            if is_undelivered(reason):
                assert reason is not None
                self._undelivered[mid] = reason
            on_publish(c, userdata, mid, reason, props)

        def tracked_on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any = None) -> None:
            maximum = getattr(props, "ReceiveMaximum", None) if props is not None else None
            self.receive_maximum = int(maximum) if maximum else DEFAULT_RECEIVE_MAXIMUM
            on_connect(c, userdata, flags, reason, props)

        paho.publish = tracked_publish
        paho.on_publish = tracked_on_publish
        paho.on_connect = tracked_on_connect

    def send(self, topic: str, payload: bytes) -> int:
        """Publish QoS 1 without waiting; returns the message id that `on_ack` will be called with.

        Raises:
            aiomqtt.MqttCodeError: paho refused the message (not connected).
        """
        info = self._publish(topic, payload, 1)
        if info.rc != MQTT_ERR_SUCCESS:
            # As aiomqtt's `publish` does: chain (and so retrieve) the reason the connection went away.
            gone = getattr(self._aiomqtt, "_disconnected", None)
            cause = gone.exception() if isinstance(gone, asyncio.Future) and gone.done() and not gone.cancelled() \
                else None
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message") from cause
        self._sent.add(info.mid)
        return int(info.mid)

    def check(self, topic: str) -> None:
        """Raise `NotDelivered` if the last publish of the calling task was not delivered."""
        mid = _last_mid.get()
        reason = self._undelivered.pop(mid, None) if mid is not None else None
        if reason is not None:
            raise NotDelivered(topic, reason)


def is_undelivered(reason: ReasonCode | None) -> bool:
    """True for a PUBACK that says "no matching subscribers" or refuses the message."""
    return reason is not None and (reason.value == NO_MATCHING_SUBSCRIBERS or reason.is_failure)
