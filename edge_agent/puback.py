"""PUBACK reason codes, which aiomqtt 2.5 discards.

An MQTT 5 broker acknowledges a QoS 1 publish with a reason code. 0x10 "no matching subscribers" means
the broker accepted the message and gave it to nobody: after a broker restart Mosquitto 2.0.11 restores
ingest's session without its shared subscription, so until ingest subscribes again every reading the edge
sends is acknowledged — and lost. Codes of 0x80 and above are refusals (not authorized, quota exceeded).
In both cases the readings must stay in the store-and-forward queue.

aiomqtt keeps the paho client as `_client` and calls its `publish` and `on_publish`; we wrap both (the only
private access of the edge agent): the message id of each publish is remembered in the publishing task's
context, the reason code of each PUBACK by message id.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import aiomqtt
from paho.mqtt.reasoncodes import ReasonCode

NO_MATCHING_SUBSCRIBERS = 0x10
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
        paho = client._client  # aiomqtt exposes no reason codes (see module docstring)
        if not callable(getattr(paho, "publish", None)) or paho.on_publish is None:
            raise RuntimeError("aiomqtt's internals changed: cannot track PUBACK reason codes")
        self._undelivered: dict[int, ReasonCode] = {}
        publish, on_publish = paho.publish, paho.on_publish

        def tracked_publish(*args: Any, **kwargs: Any) -> Any:
            info = publish(*args, **kwargs)
            _last_mid.set(info.mid)
            return info

        def tracked_on_publish(c: Any, userdata: Any, mid: int, reason: ReasonCode | None, props: Any) -> None:
            if reason is not None and (reason.value == NO_MATCHING_SUBSCRIBERS or reason.is_failure):
                self._undelivered[mid] = reason
            on_publish(c, userdata, mid, reason, props)

        paho.publish = tracked_publish
        paho.on_publish = tracked_on_publish

    def check(self, topic: str) -> None:
        """Raise `NotDelivered` if the last publish of the calling task was not delivered."""
        mid = _last_mid.get()
        reason = self._undelivered.pop(mid, None) if mid is not None else None
        if reason is not None:
            raise NotDelivered(topic, reason)
