"""Who is asking: a role, and for enterprise callers the one enterprise they are bound to."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Role(StrEnum):
    OPERATIONS = "operations"  # park operations center: every park, enterprise, device, KPI, alert
    ENTERPRISE = "enterprise"  # one enterprise's devices, KPIs and alerts
    EMERGENCY = "emergency"  # safety events and the devices and locations behind them, all parks
    ADMIN = "admin"  # registry, users and keys (and sees everything, to check what it edits)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    Args:
        kind: `user` (logged in with a password) or `key` (an API key of a machine or gateway).
        subject: the username, or the key id.
        role: what the caller may see and do.
        enterprise: the enterprise an `enterprise` caller is bound to (None for other roles).
    """

    kind: Literal["user", "key"]
    subject: str
    role: Role
    enterprise: str | None = None

    def __post_init__(self) -> None:
        if (self.role is Role.ENTERPRISE) != (self.enterprise is not None):
            raise ValueError("an enterprise principal needs exactly one enterprise id; other roles none")
