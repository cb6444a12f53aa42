"""The MQTT topic tree, version 1 (see DESIGN.md, "Contracts")."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from parkmodel.ids import validate_id

ROOT = "sp/v1"


class DeviceTopicKind(StrEnum):
    TELEMETRY = "telemetry"
    EVENT = "event"
    STATUS = "status"


class TopicError(ValueError):
    """A topic is not part of the v1 tree."""


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    """`sp/v1/{park}/{enterprise}/{device}/{kind}`; for `status` the third id is the gateway."""

    park: str
    enterprise: str
    device: str
    kind: DeviceTopicKind

    def __post_init__(self) -> None:
        validate_id(self.park, "park id")
        validate_id(self.enterprise, "enterprise id")
        validate_id(self.device, "device id")
        object.__setattr__(self, "kind", DeviceTopicKind(self.kind))

    def __str__(self) -> str:
        return f"{ROOT}/{self.park}/{self.enterprise}/{self.device}/{self.kind.value}"

    @classmethod
    def parse(cls, topic: str) -> DeviceTopic:
        parts = topic.split("/")
        if len(parts) != 6 or f"{parts[0]}/{parts[1]}" != ROOT:
            raise TopicError(f"topic {topic!r} is not sp/v1/{{park}}/{{enterprise}}/{{device}}/{{kind}}")
        try:
            return cls(parts[2], parts[3], parts[4], DeviceTopicKind(parts[5]))
        except ValueError as exc:
            raise TopicError(f"topic {topic!r}: {exc}") from None


def telemetry_topic(park: str, enterprise: str, device: str) -> str:
    return str(DeviceTopic(park, enterprise, device, DeviceTopicKind.TELEMETRY))


def event_topic(park: str, enterprise: str, device: str) -> str:
    return str(DeviceTopic(park, enterprise, device, DeviceTopicKind.EVENT))


def status_topic(park: str, enterprise: str, gateway: str) -> str:
    return str(DeviceTopic(park, enterprise, gateway, DeviceTopicKind.STATUS))


def alerts_topic(park: str, enterprise: str) -> str:
    return f"{ROOT}/{validate_id(park, 'park id')}/{validate_id(enterprise, 'enterprise id')}/alerts"


def safety_topic(park: str) -> str:
    return f"{ROOT}/{validate_id(park, 'park id')}/safety"


def kpi_topic(park: str) -> str:
    return f"{ROOT}/{validate_id(park, 'park id')}/kpi"


#: Where ingest sends what it rejects, with the reason (one sub-topic per reason code).
DEAD_LETTER_ROOT = "sp/v1/_deadletter"

TELEMETRY_SUBSCRIPTION = f"{ROOT}/+/+/+/telemetry"
EVENT_SUBSCRIPTION = f"{ROOT}/+/+/+/event"
STATUS_SUBSCRIPTION = f"{ROOT}/+/+/+/status"
KPI_SUBSCRIPTION = f"{ROOT}/+/kpi"


def shared(group: str, subscription: str) -> str:
    """A shared subscription (MQTT 5), so N workers of `group` split the stream."""
    return f"$share/{group}/{subscription}"
