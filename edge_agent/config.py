"""The gateway config: which devices one edge agent polls, how it reaches them, where it publishes.

Validated once at start-up (like Telegraf's `Init()`): a bad file stops the agent with a message naming
the file, the key and what is expected, before any connection is opened.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edge_agent.registermap import TEMPLATE_DIR, Template, TemplateError, load_template
from parkmodel.ids import validate_id
from smartpark.config import ConfigError, format_validation_error

__all__ = [
    "ConfigError", "DeviceConfig", "GatewayConfig", "MqttConfig", "StoreConfig", "TransportConfig",
    "TransportKind", "load_gateway_config", "parse_gateway_config",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    # TLS to the broker (its listener on 8883, deploy/mosquitto/): the CA that signed the broker's certificate.
    tls_ca_file: Path | None = None
    # Fixed, so the broker keeps this gateway's persistent session across reconnects.
    client_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    publish_timeout_s: float = Field(default=10.0, gt=0)
    status_interval_s: float = Field(default=60.0, gt=0)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)


class StoreConfig(_Section):
    path: Path
    # Cap of the on-disk queue: beyond it the oldest telemetry is dropped, events never.
    max_rows: int = Field(default=1_000_000, ge=10)
    # Backlog drained at most this many readings per second, so live readings keep flowing.
    drain_rate_per_s: float = Field(default=500.0, gt=0)
    # Readings of one device batched into one telemetry payload while draining a backlog.
    batch_points: int = Field(default=100, ge=1, le=10_000)


class TransportKind(StrEnum):
    TCP = "tcp"
    RTU = "rtu"
    RTU_OVER_TCP = "rtu_over_tcp"


class TransportConfig(_Section):
    kind: TransportKind
    host: str | None = None
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)
    serial_port: str | None = None
    baudrate: int = Field(default=9600, ge=300, le=921_600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bus: str | None = None
    # Silence between frames on a serial bus (Modbus RTU needs >= 3.5 character times; slow
    # converters and slaves need more).
    inter_frame_delay_ms: float = Field(default=5.0, ge=0, le=1000)

    @model_validator(mode="after")
    def _required_by_kind(self) -> Self:
        if self.kind in (TransportKind.TCP, TransportKind.RTU_OVER_TCP) and not self.host:
            raise ValueError(f"transport kind {self.kind.value!r} needs 'host' (the Modbus TCP server or serial server)")
        if self.kind is TransportKind.RTU and not self.serial_port:
            raise ValueError("transport kind 'rtu' needs 'serial_port' (e.g. /dev/ttyUSB0)")
        if self.kind is not TransportKind.TCP and not 1 <= self.unit_id <= 247:
            raise ValueError(f"unit_id on a serial bus must be 1..247, got {self.unit_id}")
        return self

    @property
    def link_key(self) -> tuple[str, str]:
        """Devices with the same key share one connection (and its request serialisation)."""
        if self.kind is TransportKind.RTU:
            return (self.kind.value, str(self.serial_port))
        return (self.kind.value, f"{self.host}:{self.port}")

    @property
    def bus_name(self) -> str:
        return self.bus or self.link_key[1]


class DeviceConfig(_Section):
    id: str
    template: str
    interval_s: float = Field(default=5.0, ge=0.05, le=86_400)
    timeout_s: float = Field(default=1.0, gt=0, le=60)
    # Extra attempts within one cycle while the device is online; an offline device gets one attempt.
    retries: int = Field(default=1, ge=0, le=10)
    # Cap of the growing delay between polls of a device that does not answer.
    max_backoff_s: float = Field(default=60.0, gt=0)
    transport: TransportConfig

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        return validate_id(value, "device id")

    @field_validator("template")
    @classmethod
    def _known_template(cls, value: str) -> str:
        try:
            load_template(value)
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def template_map(self) -> Template:
        return load_template(self.template, TEMPLATE_DIR)


class GatewayConfig(_Section):
    park: str
    enterprise: str
    gateway: str
    mqtt: MqttConfig
    store: StoreConfig
    devices: list[DeviceConfig] = Field(min_length=1)

    @field_validator("park", "enterprise", "gateway")
    @classmethod
    def _valid_ids(cls, value: str, info: ValidationInfo) -> str:
        return validate_id(value, f"{info.field_name} id")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        seen: set[str] = set()
        units: dict[tuple[tuple[str, str], int], str] = {}
        serial: dict[str, tuple[Any, ...]] = {}
        for n, d in enumerate(self.devices):
            if d.id in seen:
                raise ValueError(f"devices.{n}.id: device id {d.id!r} appears twice")
            seen.add(d.id)
            key = (d.transport.link_key, d.transport.unit_id)
            if key in units:
                raise ValueError(
                    f"devices.{n}.transport.unit_id: {d.id!r} and {units[key]!r} both use unit {d.transport.unit_id} "
                    f"on {d.transport.link_key[1]}"
                )
            units[key] = d.id
            t = d.transport
            if t.kind is TransportKind.RTU:
                line = (t.baudrate, t.parity, t.stopbits)
                if serial.setdefault(str(t.serial_port), line) != line:
                    raise ValueError(
                        f"devices.{n}.transport: {t.serial_port} is used with different baudrate/parity/stopbits"
                    )
        return self


def parse_gateway_config(data: object, source: str) -> GatewayConfig:
    """Validate already-loaded YAML data.

    Args:
        data: the parsed YAML document.
        source: where it came from (named in errors).

    Raises:
        ConfigError: the message names the file, the key and what is expected.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping (park:, enterprise:, gateway:, mqtt:, ...)")
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source).replace("Value error, ", "")) from None


def load_gateway_config(path: Path | str) -> GatewayConfig:
    """Read and validate a gateway config YAML file.

    Args:
        path: the YAML file.

    Raises:
        ConfigError: missing file, bad YAML or invalid content (file, key and expectation named).
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: gateway config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_gateway_config(data, str(path))
