from pathlib import Path

import pytest

from smartpark.config import ConfigError, load_settings


def test_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("mqtt:\n  port: 1999\ninflux:\n  database: parks\n")
    s = load_settings(f)
    assert (s.mqtt.port, s.influx.database) == (1999, "parks")
    monkeypatch.setenv("SMARTPARK_MQTT__PORT", "2001")
    assert load_settings(f).mqtt.port == 2001


def test_errors_name_file_key_and_expectation(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("mqtt:\n  port: 99999\n")
    with pytest.raises(ConfigError) as err:
        load_settings(f)
    assert str(f) in str(err.value) and "mqtt.port" in str(err.value) and "65535" in str(err.value)
    f.write_text("mqtt:\n  prot: 1\n")
    with pytest.raises(ConfigError, match=r"mqtt\.prot: Extra inputs are not permitted"):
        load_settings(f)
    f.write_text("- 1\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_settings(f)
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "none.yaml")
