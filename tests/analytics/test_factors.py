"""The shipped factor set and its validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.factors import DEFAULT_FACTORS, load_factors
from smartpark.config import ConfigError


def test_defaults_are_reference_figures_with_sources() -> None:
    f = load_factors()
    assert f.electricity_kgce_per_kwh.value == 0.1229 and f.electricity_kgce_per_kwh.status == "V"
    assert f.grid_kgco2_per_kwh.value == 0.6479 and f.grid_kgco2_per_kwh.status == "S"
    assert "2023" in f.grid_kgco2_per_kwh.source
    assert (f.coal.natural_gas.value, f.coal.steam.value, f.fuel_co2.natural_gas.value) == (1.2143, 128.6, 2.1622)
    assert f.grid_co2["national"].value == 0.5306
    assert f.coal.water is None  # sources conflict: not counted until chosen
    assert f.heat_co2.steam is not None and f.heat_co2.steam.status == "U"


def test_bad_factor_file_names_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "factors.yaml"
    bad.write_text(DEFAULT_FACTORS.read_text(encoding="utf-8").replace("value: 1.2143", "value: -1"),
                   encoding="utf-8")
    with pytest.raises(ConfigError, match=r"factors\.yaml.*\n.*coal\.natural_gas\.value"):
        load_factors(bad)
    with pytest.raises(ConfigError, match="grid_region 'mars'"):
        load_factors(grid_region="mars")
    with pytest.raises(ConfigError, match="not found"):
        load_factors(tmp_path / "missing.yaml")
