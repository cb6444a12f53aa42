"""Webhook subscribers (enterprises, emergency management), declared in YAML and validated at start-up.

    version: 1
    subscribers:
      - id: em-otog                      # recipient id, names its delivery stream
        url: https://em.example/hooks/smartpark
        secret_env: SMARTPARK_EM_OTOG_SECRET   # or `secret: ...` (HMAC-SHA256 key)
        scope: {parks: [otog], categories: [safety, environment]}   # empty list = any
        max_per_minute: 60               # repeats/reminders beyond this are logged as suppressed
        reminder_interval_s: 600         # re-notify unacknowledged alerts this often
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from analytics.alerts.rules import Category, Id, RulesError
from parkmodel.registry import Registry


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scope(_Model):
    parks: list[Id] = Field(default_factory=list)
    enterprises: list[Id] = Field(default_factory=list)
    categories: list[Category] = Field(default_factory=list)


class Subscriber(_Model):
    id: Id
    url: str
    secret: SecretStr | None = None
    secret_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    scope: Scope = Scope()
    max_per_minute: int | None = Field(default=None, ge=1)
    reminder_interval_s: float | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=5.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> Subscriber:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError("give exactly one of secret and secret_env")
        return self

    @property
    def target(self) -> str:
        return f"webhook:{self.id}"

    def key(self) -> bytes:
        """The HMAC key (read from the environment if `secret_env`)."""
        if self.secret is not None:
            return self.secret.get_secret_value().encode()
        value = os.environ.get(self.secret_env or "")
        if not value:
            raise RulesError(f"subscriber {self.id}: environment variable {self.secret_env} is not set")
        return value.encode()

    def wants(self, alert: dict[str, Any]) -> bool:
        """Whether an alert is in this subscriber's scope."""
        s = self.scope
        return ((not s.parks or alert["park"] in s.parks)
                and (not s.enterprises or alert.get("enterprise") in s.enterprises)
                and (not s.categories or alert["category"] in s.categories))


class SubscriberFile(_Model):
    version: Literal[1]
    subscribers: list[Subscriber] = Field(default_factory=list)


def parse_subscribers(data: Any, source: str, registry: Registry | None = None) -> list[Subscriber]:
    """Validate a subscribers mapping; errors name `source` and the key.

    Args:
        data: the YAML content.
        source: file name used in messages.
        registry: if given, park and enterprise ids of scopes must exist in it.
    """
    try:
        parsed = SubscriberFile.model_validate(data)
    except ValidationError as exc:
        subs = data.get("subscribers") if isinstance(data, dict) else None
        lines = [f"{source}: invalid subscribers:"]
        for err in exc.errors():
            loc = list(err["loc"])
            if len(loc) > 1 and loc[0] == "subscribers" and isinstance(loc[1], int) and isinstance(subs, list):
                sid = subs[loc[1]].get("id") if isinstance(subs[loc[1]], dict) else None
                loc[:2] = [f"subscribers[{sid or loc[1]}]"]
            lines.append(f"  {'.'.join(map(str, loc)) or '(top level)'}: {err['msg']}")
        raise RulesError("\n".join(lines)) from None
    ids = [s.id for s in parsed.subscribers]
    if len(set(ids)) != len(ids):
        raise RulesError(f"{source}: subscribers: ids must be unique, got {ids}")
    for s in parsed.subscribers:
        if registry is not None:
            for p in s.scope.parks:
                if registry.park(p) is None:
                    raise RulesError(f"{source}: subscribers[{s.id}].scope.parks: unknown park {p!r}")
            for e in s.scope.enterprises:
                if registry.enterprise(e) is None:
                    raise RulesError(f"{source}: subscribers[{s.id}].scope.enterprises: unknown enterprise {e!r}")
        if s.secret_env is not None and not os.environ.get(s.secret_env):
            raise RulesError(f"{source}: subscribers[{s.id}].secret_env: environment variable {s.secret_env} "
                             "is not set")
    return parsed.subscribers


def load_subscribers(path: Path | None, registry: Registry | None = None) -> list[Subscriber]:
    """Load the subscribers file (None: no webhooks).

    Raises:
        RulesError: naming the file and the key.
    """
    if path is None:
        return []
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RulesError(f"{path}: subscribers file not found") from None
    except yaml.YAMLError as exc:
        raise RulesError(f"{path}: not valid YAML: {exc}") from None
    return parse_subscribers(data, str(path), registry)
