"""Typed, validated configuration of the cloud services.

Sources, later ones winning: defaults, a YAML file (`--config`), environment variables
`SMARTPARK_<SECTION>__<KEY>` (e.g. `SMARTPARK_MQTT__PORT=1884`). A bad value is reported with the
file, the key and what is expected.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Self, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from parkmodel.ids import ID_PATTERN
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


#: An InfluxDB 1.x retention duration: `INF` or whole units (w, d, h, m, s), e.g. `30d`, `104w`, `1d12h`.
INFLUX_DURATION_PATTERN = r"^(INF|([0-9]{1,7}(w|d|h|m|s))+)$"
_DURATION_UNIT_S = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_RP_NAME = r"^[A-Za-z0-9_]+$"


def influx_duration_s(text: str) -> int:
    """Seconds of an InfluxDB duration (`30d`, `720h0m0s`, ...); 0 means infinite (`INF`, `0s`).

    Args:
        text: the duration as in the config or as `SHOW RETENTION POLICIES` prints it.
    """
    if text.upper() == "INF":
        return 0
    matches = re.findall(r"([0-9]+)(w|d|h|m|s)", text)
    if not matches or "".join(n + u for n, u in matches) != text:
        raise ValueError(f"{text!r} is not an InfluxDB duration such as 30d, 104w or INF")
    return sum(int(n) * _DURATION_UNIT_S[u] for n, u in matches)


def _retention(value: str) -> str:
    if not re.fullmatch(INFLUX_DURATION_PATTERN, value):
        raise ValueError("expected an InfluxDB duration such as 30d, 104w, 1d12h or INF (there is no year unit: "
                         "5 years is 1825d)")
    seconds = influx_duration_s(value)
    if 0 < seconds < 3600:
        raise ValueError(f"{value!r} is shorter than InfluxDB's minimum retention of 1h (or use INF)")
    return value


_Retention = Annotated[str, AfterValidator(_retention)]


class InfluxSettings(_Section):
    """InfluxDB connection and storage layout (see `smartpark.influx_schema`).

    Raw data lives in `raw_rp` (the database's DEFAULT policy, where ingest and analytics write) for
    `raw_retention`; continuous queries roll it up into `rollup_1m_rp` and `rollup_1h_rp`, kept longer.
    """

    url: str = "http://127.0.0.1:8086"
    database: str = Field(default="smartpark", pattern=r"^[A-Za-z0-9_]+$")
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = Field(default=10.0, gt=0)
    raw_rp: str = Field(default="raw", pattern=_RP_NAME, description="DEFAULT retention policy of raw writes")
    raw_retention: _Retention = "30d"
    rollup_1m_rp: str = Field(default="rollup_1m", pattern=_RP_NAME)
    rollup_1m_retention: _Retention = "730d"
    rollup_1h_rp: str = Field(default="rollup_1h", pattern=_RP_NAME)
    rollup_1h_retention: _Retention = "3650d"

    @model_validator(mode="after")
    def _distinct_policies(self) -> Self:
        names = [self.raw_rp, self.rollup_1m_rp, self.rollup_1h_rp]
        if len(set(names)) != len(names):
            raise ValueError(f"raw_rp, rollup_1m_rp and rollup_1h_rp must be three different names (got {names})")
        return self


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
    # Partitioning by park: a worker given parks takes only their telemetry and publishes only their KPIs;
    # empty = every park (one worker, or N workers of one group splitting the whole stream).
    parks: list[Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]] = Field(default_factory=list)
    factors_file: Path | None = Field(default=None, description="tce/CO2 coefficients (default: analytics/data/factors.yaml)")


class AlertsSettings(_Section):
    rules_dir: Path | None = Field(default=None, description="per-park rule overrides (default: {var_dir}/rules)")


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
    alerts: AlertsSettings = AlertsSettings()
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


def read_yaml(path: Path | None, *, what: str = "config file",
              top_level: str = "of sections (mqtt:, influx:, ...)", empty_ok: bool = True) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file and what was expected.

    Args:
        path: the file; None reads as empty.
        what: what the file is, for "not found".
        top_level: what the top-level mapping holds, for the error when it is not a mapping.
        empty_ok: an empty file reads as `{}` (else it is an error like any non-mapping).
    """
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping {top_level}")
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
