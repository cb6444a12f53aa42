"""Alerts and safety events: rules on the live stream, a shared SQLite store, at-least-once notification.

The engine (`AlertEngine`) is fed by the analytics service's hooks or subscribes itself (`run_alerts`,
`smartpark alerts`); the API reads and acknowledges through `AlertStore`.
"""

from analytics.alerts.delivery import RetryPolicy, sign, verify
from analytics.alerts.engine import AlertEngine, EngineOptions, run_alerts
from analytics.alerts.rule_files import RevisionConflict, RuleFiles, RuleVersion
from analytics.alerts.rules import (
    DEFAULT_RULES,
    RuleBook,
    RulesError,
    default_rulebook,
    load_rulebook,
    park_ruleset,
    rules_dir_of,
)
from analytics.alerts.store import AlertConflict, AlertFilter, AlertNotFound, AlertStore
from analytics.alerts.subscribers import Subscriber, load_subscribers, parse_subscribers

__all__ = [
    "DEFAULT_RULES", "AlertConflict", "AlertEngine", "AlertFilter", "AlertNotFound", "AlertStore", "EngineOptions",
    "RetryPolicy", "RevisionConflict", "RuleBook", "RuleFiles", "RuleVersion", "RulesError", "Subscriber",
    "default_rulebook", "load_rulebook", "load_subscribers", "park_ruleset", "parse_subscribers", "rules_dir_of",
    "run_alerts", "sign", "verify",
]
