"""Typed, validated configuration of the cloud services.

Sources, later ones winning: defaults, a YAML file (`--config`), environment variables
`SMARTPARK_<SECTION>__<KEY>` (e.g. `SMARTPARK_MQTT__PORT=1884`). A bad value is reported with the
file, the key and what is expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from parkmodel.registry import DEFAULT_REGISTRY


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls_ca_file: Path | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)


class InfluxSettings(_Section):
    url: str = "http://127.0.0.1:8086"
    database: str = Field(default="smartpark", pattern=r"^[A-Za-z0-9_]+$")
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = Field(default=10.0, gt=0)


class IngestSettings(_Section):
    group: str = Field(default="ingest", pattern=r"^[a-z0-9_-]+$")
    client_id: str = Field(default="ingest-1", pattern=r"^[A-Za-z0-9_-]+$")
    batch_points: int = Field(default=5000, ge=1, le=1_000_000)
    batch_interval_s: float = Field(default=0.2, gt=0, le=60)
    max_in_flight: int = Field(default=20_000, ge=10)


class AnalyticsSettings(_Section):
    group: str = Field(default="analytics", pattern=r"^[a-z0-9_-]+$")
    client_id: str = Field(default="analytics-1", pattern=r"^[A-Za-z0-9_-]+$")
    publish_interval_s: float = Field(default=2.0, gt=0, le=5)
    factors_file: Path | None = Field(default=None, description="tce/CO2 coefficients (default: analytics/data/factors.yaml)")


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTPARK_", env_nested_delimiter="__", extra="forbid")

    registry: Path = DEFAULT_REGISTRY
    var_dir: Path = Path("var")
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    mqtt: MqttSettings = MqttSettings()
    influx: InfluxSettings = InfluxSettings()
    ingest: IngestSettings = IngestSettings()
    analytics: AnalyticsSettings = AnalyticsSettings()
    api: ApiSettings = ApiSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file (init kwargs carry the file's content).
        return (env_settings, init_settings)


class ConfigError(ValueError):
    """Configuration that cannot be used; the message names file, key and what is expected."""


M = TypeVar("M", bound=BaseModel)


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration:"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        expected = err["msg"]
        got = err.get("input")
        shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
        lines.append(f"  {key}: {expected}{shown}")
    return "\n".join(lines)


def read_yaml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (mqtt:, influx:, ...)")
    return data


def load_model(model: type[M], path: Path | None, **overrides: Any) -> M:
    """Validate a YAML file (plus overrides) as `model`, raising `ConfigError` that names file and key."""
    data = read_yaml(path) | overrides
    try:
        return model(**data)
    except ValidationError as exc:
        source = f"{path} (or SMARTPARK_* environment)" if path else "SMARTPARK_* environment"
        raise ConfigError(format_validation_error(exc, source)) from None


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    return load_model(Settings, path, **overrides)
