"""Standard-coal and CO2 factors of the tce and carbon KPIs, each naming its source.

Defaults come from `analytics/data/factors.yaml` (figures of REFERENCE.md); a site passes its own file.
Errors name the file, the key and what is expected.

Accounting used by the KPIs:

- tce = electricity consumed (grid import + green supply + on-site generation − export) × the
  electricity coefficient of the chosen convention (当量值 by default) + gas × 1.2143 + steam × 128.6
  (+ water only if a coefficient is configured).
- scope 1 CO2 = natural gas burnt × its combustion factor.
- scope 2 CO2 = net electricity purchased from the grid (import − export, floored at 0, per
  enterprise) × the grid factor of `grid_region` + purchased steam × its factor. Green supply and
  on-site PV/wind carry no scope-2 emission.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from smartpark.config import ConfigError, format_validation_error, read_yaml

DEFAULT_FACTORS = Path(__file__).parent / "data" / "factors.yaml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Factor(_Model):
    """One published figure.

    Attributes:
        value: the figure, in `unit`.
        unit: e.g. kgce/kWh, kgCO2/m3.
        source: where it comes from (standard, notice, data year).
        status: V verified in a stored copy, S secondary copy only, U unverified placeholder.
    """

    value: float = Field(ge=0)
    unit: str
    source: str = Field(min_length=1)
    status: Literal["V", "S", "U"]


class CoalFactors(_Model):
    electricity_equivalent: Factor
    electricity_equal_value: Factor
    natural_gas: Factor
    steam: Factor
    water: Factor | None = None


class FuelCo2(_Model):
    natural_gas: Factor


class HeatCo2(_Model):
    steam: Factor | None = None


class Factors(_Model):
    """The factor set the KPIs use."""

    version: Literal[1] = 1
    electricity_convention: Literal["equivalent", "equal_value"] = "equivalent"
    grid_region: str
    coal: CoalFactors
    grid_co2: dict[str, Factor]
    fuel_co2: FuelCo2
    heat_co2: HeatCo2 = HeatCo2()

    @model_validator(mode="after")
    def _region_known(self) -> Factors:
        if self.grid_region not in self.grid_co2:
            raise ValueError(f"grid_region {self.grid_region!r} is not a key of grid_co2 "
                             f"({', '.join(sorted(self.grid_co2))})")
        return self

    @property
    def electricity_kgce_per_kwh(self) -> Factor:
        return (self.coal.electricity_equivalent if self.electricity_convention == "equivalent"
                else self.coal.electricity_equal_value)

    @property
    def grid_kgco2_per_kwh(self) -> Factor:
        return self.grid_co2[self.grid_region]


def load_factors(path: Path | str | None = None, **overrides: object) -> Factors:
    """Load a factor file (default: the shipped REFERENCE.md figures).

    Args:
        path: YAML file; None for the shipped defaults.
        overrides: top-level keys replacing the file's (e.g. `grid_region="national"`).

    Raises:
        ConfigError: naming the file, the key and what is expected.
    """
    source = Path(path) if path is not None else DEFAULT_FACTORS
    data = read_yaml(source, what="factor file", top_level="(version, coal, grid_co2, ...)", empty_ok=False)
    try:
        return Factors.model_validate(data | overrides)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(source))) from None


@cache
def default_factors() -> Factors:
    """The shipped factors (loaded once)."""
    return load_factors()
