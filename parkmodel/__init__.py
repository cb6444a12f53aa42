"""The shared contract of SmartPark: ids, topic tree, payload codec, point dictionary, park registry.

Knows no server and does no I/O beyond reading the registry file it is given.
"""

from parkmodel.codec import (
    CodecError,
    Event,
    GatewayStatus,
    Reason,
    Telemetry,
    decode_event,
    decode_status,
    decode_telemetry,
    encode,
    telemetry_payload,
)
from parkmodel.ids import InvalidIdError, is_valid_id, validate_id
from parkmodel.points import POINTS, PointKind, PointSpec
from parkmodel.registry import (
    Device,
    DeviceRef,
    Enterprise,
    Gateway,
    Park,
    Registry,
    RegistryError,
    Role,
    load_registry,
)
from parkmodel.topics import DeviceTopic, DeviceTopicKind, TopicError

__all__ = [
    "POINTS", "CodecError", "Device", "DeviceRef", "DeviceTopic", "DeviceTopicKind", "Enterprise", "Event",
    "Gateway", "GatewayStatus", "InvalidIdError", "Park", "PointKind", "PointSpec", "Reason", "Registry",
    "RegistryError", "Role", "Telemetry", "TopicError", "decode_event", "decode_status", "decode_telemetry",
    "encode", "is_valid_id", "load_registry", "telemetry_payload", "validate_id",
]
