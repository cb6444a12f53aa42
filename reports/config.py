"""The evaluation config (`reports/data/evaluation.yaml`): weights, benchmarks, class splits, park ranking.

Loaded and validated once; errors name the file, the key and what is expected.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from smartpark.config import ConfigError, format_validation_error, read_yaml

DEFAULT_EVALUATION = Path(__file__).parent / "data" / "evaluation.yaml"
ENTERPRISE_INDICATORS = ("tax_per_mu", "value_added_per_mu", "output_per_mu", "value_added_per_tce",
                         "output_per_tce", "value_added_per_tco2", "labour_productivity", "rd_intensity",
                         "tax_per_kwh")
PARK_INDICATORS = ("output_progress", "output_per_mu", "tax_per_mu", "value_added_per_tce", "new_energy_ratio",
                   "value_added_per_mu")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Indicator(_Model):
    key: str
    name_zh: str
    name_en: str
    unit: str
    weight: float = Field(ge=0)
    benchmark: float | None = Field(default=None, gt=0)
    direction: Literal["higher", "lower"] = "higher"
    source: str = Field(min_length=1)


class ClassSplit(_Model):
    code: str = Field(min_length=1, max_length=4)
    name_zh: str
    name_en: str
    upto_pct: float = Field(gt=0, le=100)


def _check_keys(indicators: list[Indicator], allowed: tuple[str, ...]) -> None:
    keys = [i.key for i in indicators]
    for i, key in enumerate(keys):
        if key not in allowed:
            raise ValueError(f"indicators.{i}.key: {key!r} is not one of {', '.join(allowed)}")
        if keys.index(key) != i:
            raise ValueError(f"indicators.{i}.key: {key!r} is listed twice")
    if sum(i.weight for i in indicators) <= 0:
        raise ValueError("indicators: the weights must not all be 0")


class EnterpriseScheme(_Model):
    method: Literal["benchmark", "normalised"]
    method_source: str
    group: Literal["registry", "park"] = "registry"
    cap: float | None = Field(default=None, gt=0)
    indicators: list[Indicator] = Field(min_length=1)
    classes: list[ClassSplit] = Field(min_length=1)
    classes_source: str

    @model_validator(mode="after")
    def _valid(self) -> EnterpriseScheme:
        _check_keys(self.indicators, ENTERPRISE_INDICATORS)
        bounds = [c.upto_pct for c in self.classes]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds) or bounds[-1] != 100:
            raise ValueError("classes: upto_pct must rise strictly, best class first, and the last must be 100")
        return self


class ParkScheme(_Model):
    method: Literal["benchmark", "normalised"] = "normalised"
    reward_top: int = Field(ge=0)
    reward_source: str
    indicators: list[Indicator] = Field(min_length=1)

    @model_validator(mode="after")
    def _valid(self) -> ParkScheme:
        _check_keys(self.indicators, PARK_INDICATORS)
        return self


class EvaluationConfig(_Model):
    version: Literal[1] = 1
    revision: str = Field(min_length=1)
    enterprise: EnterpriseScheme
    park: ParkScheme


def load_evaluation(path: Path | str | None = None) -> EvaluationConfig:
    """Load an evaluation config (default: the shipped one).

    Raises:
        ConfigError: naming the file, the key and what is expected.
    """
    source = Path(path) if path is not None else DEFAULT_EVALUATION
    data = read_yaml(source, what="evaluation config", top_level="(version, revision, enterprise, park)",
                     empty_ok=False)
    try:
        return EvaluationConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(source))) from None


@cache
def default_evaluation() -> EvaluationConfig:
    """The shipped config (loaded once)."""
    return load_evaluation()
