"""Alert rules: declared in versioned YAML (shipped defaults, merged per park), validated once at start-up.

A park's file `{rules_dir}/{park}.yaml` has the default file's shape: a rule listed by id is merged key
by key into the default of that id (`enabled: false` switches it off), a new id adds a rule, and
`quotas:` gives enterprises their daily energy quota in kWh. Every error names the file and the key.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from parkmodel.ids import ID_PATTERN
from parkmodel.points import POINTS
from parkmodel.registry import Registry, Role

if TYPE_CHECKING:
    from smartpark.config import Settings

DEFAULT_RULES = Path(__file__).parent / "data" / "default_rules.yaml"

Id = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
Category = Literal["energy", "safety", "environment"]
Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")


class RulesError(ValueError):
    """A rules or subscribers file that cannot be used; the message names the file and the key."""


def raise_severity(severity: str) -> Severity:
    """The next severity up (critical stays critical)."""
    return SEVERITIES[min(SEVERITIES.index(severity) + 1, len(SEVERITIES) - 1)]  # type: ignore[arg-type]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Level(_Model):
    raise_at: float = Field(alias="raise", description="value at (or beyond) which this level is reached")
    severity: Severity


class _Rule(_Model):
    id: Id
    category: Category
    enabled: bool = True
    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    source: str = Field(min_length=1, description="where the limit comes from (standard, clause, status)")
    escalate_after_s: float | None = Field(
        default=None, gt=0, description="safety alerts unacknowledged this long escalate (default 300 s)")
    update_interval_s: float = Field(default=60.0, ge=0, description="at most one 'updated' notice per interval")


class _Leveled(_Rule):
    levels: list[Level] = Field(min_length=1)
    clear: float
    direction: Literal["high", "low"] = "high"

    @model_validator(mode="after")
    def _ordered(self) -> _Leveled:
        raises = [lv.raise_at for lv in self.levels]
        sign = 1 if self.direction == "high" else -1
        if any(sign * (b - a) <= 0 for a, b in itertools.pairwise(raises)):
            raise ValueError(f"levels must be strictly {'increasing' if sign > 0 else 'decreasing'}: {raises}")
        if sign * (raises[0] - self.clear) <= 0:
            raise ValueError(f"clear {self.clear} must be {'below' if sign > 0 else 'above'} the first level "
                             f"{raises[0]} (hysteresis)")
        return self


class _PointRule(_Rule):
    point: str
    roles: list[Role] = Field(min_length=1)

    @field_validator("point")
    @classmethod
    def _known_point(cls, value: str) -> str:
        if value not in POINTS:
            raise ValueError(f"unknown point {value!r}; known: {', '.join(sorted(POINTS))}")
        return value


class ThresholdRule(_PointRule, _Leveled):
    """Levels with one clear value (hysteresis), an on-delay, optionally on a rolling mean."""

    kind: Literal["threshold"]
    on_delay_s: float = Field(default=0.0, ge=0)
    average_s: float | None = Field(default=None, gt=0, description="evaluate the rolling mean over this window")
    absolute: bool = Field(default=False, description="compare |value| (power factor of an exporting meter)")


class RateRule(_PointRule):
    """Rate of change over a window, in point units per minute."""

    kind: Literal["rate"]
    window_s: float = Field(default=60.0, gt=0)
    raise_per_min: float = Field(gt=0)
    clear_per_min: float = Field(ge=0)
    direction: Literal["rise", "fall", "both"] = "both"
    severity: Severity = "warning"

    @model_validator(mode="after")
    def _hysteresis(self) -> RateRule:
        if self.clear_per_min >= self.raise_per_min:
            raise ValueError("clear_per_min must be below raise_per_min (hysteresis)")
        return self


class StaleRule(_Rule):
    """No reading for `intervals` poll intervals, or reported offline by the gateway."""

    kind: Literal["stale"]
    roles: list[Role] = Field(min_length=1)
    intervals: float = Field(default=5.0, ge=1)
    severity: Severity = "warning"


class GatewayOfflineRule(_Rule):
    kind: Literal["gateway_offline"]
    severity: Severity = "warning"


class DemandRule(_Leveled):
    """15-min demand (mean grid import) as a fraction of the enterprise's contracted capacity."""

    kind: Literal["demand"]
    window_s: float = Field(default=900.0, gt=0)
    min_window_s: float = Field(default=300.0, ge=0)


class DailyQuotaRule(_Leveled):
    """Energy consumed today as a fraction of the enterprise's daily quota (park file `quotas:`)."""

    kind: Literal["daily_quota"]


class _Baseline(_Rule):
    weeks: int = Field(default=4, ge=1, le=52)
    min_kw: float = Field(default=10.0, ge=0, description="ignore deviations smaller than this")
    min_history: int = Field(default=3, ge=1, description="weeks of history needed before judging")
    severity: Severity = "warning"


class BaseLoadRule(_Baseline):
    """Off-hours (night, weekend) hourly mean load above the usual off-hours load × (1 + margin)."""

    kind: Literal["base_load"]
    margin: float = Field(default=0.2, ge=0)
    night_hours: tuple[int, int] = (22, 6)
    weekend: bool = True

    @field_validator("night_hours")
    @classmethod
    def _hours(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not all(0 <= h <= 23 for h in value):
            raise ValueError("night_hours are two hours 0..23: [start, end)")
        return value


class AnomalyRule(_Baseline):
    """Hourly mean load vs the same hour of week of the last weeks: robust z-score with median and MAD."""

    kind: Literal["anomaly"]
    k: float = Field(default=3.5, gt=0)


Rule = Annotated[
    ThresholdRule | RateRule | StaleRule | GatewayOfflineRule | DemandRule | DailyQuotaRule | BaseLoadRule
    | AnomalyRule,
    Field(discriminator="kind"),
]
KPI_RULE_KINDS = (DemandRule, DailyQuotaRule, BaseLoadRule, AnomalyRule)


class RuleFile(_Model):
    version: Literal[1]
    revision: str = ""
    rules: list[Rule]
    quotas: dict[Id, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique(self) -> RuleFile:
        ids = [r.id for r in self.rules]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"rule ids used twice: {twice}")
        return self


@dataclass(frozen=True)
class RuleSet:
    """The effective rules of one park, indexed for the hot path."""

    revision: str
    rules: tuple[Any, ...]
    quotas: dict[str, float]
    by_role_point: dict[tuple[Role, str], tuple[ThresholdRule | RateRule, ...]] = field(default_factory=dict)
    stale_by_role: dict[Role, tuple[StaleRule, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, parsed: RuleFile) -> RuleSet:
        enabled = tuple(r for r in parsed.rules if r.enabled)
        by_rp: dict[tuple[Role, str], list[ThresholdRule | RateRule]] = defaultdict(list)
        stale: dict[Role, list[StaleRule]] = defaultdict(list)
        for r in enabled:
            if isinstance(r, ThresholdRule | RateRule):
                for role in r.roles:
                    by_rp[(role, r.point)].append(r)
            elif isinstance(r, StaleRule):
                for role in r.roles:
                    stale[role].append(r)
        return cls(parsed.revision, enabled, dict(parsed.quotas), {k: tuple(v) for k, v in by_rp.items()},
                   {k: tuple(v) for k, v in stale.items()})

    def get(self, rule_id: str) -> Any | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def of_kind(self, kind: type[Any]) -> list[Any]:
        return [r for r in self.rules if isinstance(r, kind)]


@dataclass(frozen=True)
class RuleBook:
    """The default rule set and each park's effective one."""

    default: RuleSet
    parks: dict[str, RuleSet]

    def for_park(self, park: str) -> RuleSet:
        return self.parks.get(park, self.default)

    def get(self, park: str, rule_id: str) -> Any | None:
        return self.for_park(park).get(rule_id)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RulesError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise RulesError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RulesError(f"{path}: the top level must be a mapping (version:, rules:, ...)")
    return data


def _where(loc: tuple[Any, ...], rules: list[Any]) -> str:
    parts: list[str] = []
    i = 0
    while i < len(loc):
        p = loc[i]
        if parts == ["rules"] and isinstance(p, int):
            rid = rules[p].get("id") if p < len(rules) and isinstance(rules[p], dict) else None
            parts[-1] = f"rules[{rid or p}]"
            if i + 1 < len(loc) and loc[i + 1] in _KINDS:
                i += 1  # drop pydantic's discriminator tag from the key path
        else:
            parts.append(str(p))
        i += 1
    return ".".join(parts) or "(top level)"


_KINDS = {"threshold", "rate", "stale", "gateway_offline", "demand", "daily_quota", "base_load", "anomaly"}


def parse_rule_file(data: dict[str, Any], source: str) -> RuleFile:
    """Validate a rules mapping, raising `RulesError` that names `source` and the key.

    Args:
        data: the YAML content.
        source: file name used in messages.
    """
    try:
        return RuleFile.model_validate(data)
    except ValidationError as exc:
        rules = data.get("rules") if isinstance(data.get("rules"), list) else []
        lines = [f"{source}: invalid alert rules:"]
        for err in exc.errors():
            lines.append(f"  {_where(tuple(err['loc']), rules)}: {err['msg']}")  # type: ignore[arg-type]
        raise RulesError("\n".join(lines)) from None


def merge_park(defaults: dict[str, Any], override: dict[str, Any], source: str) -> dict[str, Any]:
    """Merge a park's override mapping into the default mapping (rules by id, key by key)."""
    rules = override.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) and "id" in r for r in rules):
        raise RulesError(f"{source}: rules: must be a list of mappings, each with an id")
    merged = {r["id"]: dict(r) for r in defaults["rules"]}
    for r in rules:
        merged[r["id"]] = {**merged.get(r["id"], {}), **r}
    unknown = set(override) - {"version", "revision", "rules", "quotas"}
    if unknown:
        raise RulesError(f"{source}: unknown keys {sorted(unknown)} (expected version, revision, rules, quotas)")
    return {
        "version": override.get("version", defaults.get("version")),
        "revision": f"{defaults.get('revision', '')}+{override.get('revision', 'park')}",
        "rules": list(merged.values()),
        "quotas": override.get("quotas", {}) or {},
    }


def rules_dir_of(settings: Settings) -> Path:
    """The per-park rules folder: `settings.alerts.rules_dir` when configured, else `{var_dir}/rules`.

    Args:
        settings: platform settings.
    """
    configured = settings.alerts.rules_dir
    return Path(configured) if configured else Path(settings.var_dir) / "rules"


def read_defaults(defaults: Path = DEFAULT_RULES) -> dict[str, Any]:
    """The default rules file's mapping (validated).

    Raises:
        RulesError: naming the file and the key.
    """
    data = _read(defaults)
    parse_rule_file(data, str(defaults))
    return data


def park_ruleset(registry: Registry, park_id: str, override: Any, source: str,
                 defaults: dict[str, Any] | None = None) -> RuleSet:
    """Validate one park's override mapping merged into the defaults; the park's effective rules.

    Args:
        registry: the registry the park and its enterprises (quotas) must be in.
        park_id: the park.
        override: the override mapping (a park file's content, or an API body).
        source: file name (or request) used in messages.
        defaults: the default rules mapping (default: the shipped file).

    Raises:
        RulesError: naming `source` and the key.
    """
    park = registry.park(park_id)
    if park is None:
        raise RulesError(f"{source}: no park {park_id!r} in the registry (files are named {{park}}.yaml)")
    if not isinstance(override, dict):
        raise RulesError(f"{source}: the top level must be a mapping (version:, rules:, quotas:)")
    base = defaults if defaults is not None else _read(DEFAULT_RULES)
    parsed = parse_rule_file(merge_park(base, override, source), source)
    ents = {e.id for e in park.enterprises}
    for ent in parsed.quotas:
        if ent not in ents:
            raise RulesError(f"{source}: quotas.{ent}: not an enterprise of park {park.id!r}")
    return RuleSet.of(parsed)


def load_rulebook(registry: Registry, rules_dir: Path | None = None, defaults: Path = DEFAULT_RULES) -> RuleBook:
    """Load and validate the default rules and each park's override file.

    Args:
        registry: parks and enterprises the files may name.
        rules_dir: folder of `{park}.yaml` override files (optional).
        defaults: the default rules file.

    Raises:
        RulesError: naming the file and the key.
    """
    base_data = _read(defaults)
    base = parse_rule_file(base_data, str(defaults))
    parks: dict[str, RuleSet] = {}
    if rules_dir is not None:
        if not rules_dir.is_dir():
            raise RulesError(f"{rules_dir}: rules folder not found")
        for path in sorted(rules_dir.glob("*.yaml")):
            parks[path.stem] = park_ruleset(registry, path.stem, _read(path), str(path), base_data)
    return RuleBook(RuleSet.of(base), parks)


def default_rulebook() -> RuleBook:
    return RuleBook(RuleSet.of(parse_rule_file(_read(DEFAULT_RULES), str(DEFAULT_RULES))), {})
