"""`smartpark alerts`: run the alert engine as its own process; check rules; list and acknowledge alerts."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from parkmodel.registry import RegistryError, load_registry
from smartpark.config import ConfigError, Settings, load_settings

app = typer.Typer(help="Alerts and safety events: thresholds, staleness, energy rules; MQTT and webhooks.")

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML config file (sections mqtt, ...)")]
RulesDirOpt = Annotated[Path | None, typer.Option(
    "--rules-dir", help="folder of per-park {park}.yaml overrides (default: alerts.rules_dir, else {var_dir}/rules)")]
SubscribersOpt = Annotated[Path | None, typer.Option("--subscribers", help="webhook subscribers YAML")]
StoreOpt = Annotated[Path | None, typer.Option("--store", help="SQLite file (default {var_dir}/alerts.sqlite)")]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def _store_path(settings: Settings, store: Path | None) -> Path:
    return store or Path(settings.var_dir) / "alerts.sqlite"


def _rules_dir(settings: Settings, given: Path | None) -> tuple[Path, Path | None]:
    """The folder to watch, and the one to load now (None while the default folder does not exist yet)."""
    from analytics.alerts.rules import rules_dir_of

    folder = given or rules_dir_of(settings)
    return folder, (folder if given is not None or folder.is_dir() else None)


@app.callback(invoke_without_command=True)
def alerts(ctx: typer.Context, config: ConfigOpt = None, rules_dir: RulesDirOpt = None,
           subscribers: SubscribersOpt = None, store: StoreOpt = None,
           group: Annotated[str, typer.Option(help="shared-subscription group")] = "alerts") -> None:
    """Without a sub-command: subscribe to the live stream and raise, notify and escalate alerts until interrupted."""
    if ctx.invoked_subcommand is not None:
        return
    from analytics.alerts.engine import EngineOptions, run_alerts
    from analytics.alerts.rules import RulesError, load_rulebook
    from analytics.alerts.subscribers import load_subscribers

    settings = _settings(config)
    watched, now = _rules_dir(settings, rules_dir)
    try:
        registry = load_registry(settings.registry)
        book = load_rulebook(registry, now)
        subs = load_subscribers(subscribers, registry)
    except (RegistryError, RulesError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Registry and rule edits (the API's) are followed live; invalid versions are logged and skipped.
    options = EngineOptions(store_path=_store_path(settings, store), group=group,
                            registry_path=Path(settings.registry), rules_dir=watched)
    try:
        asyncio.run(run_alerts(settings, registry, book, subscribers=subs, options=options))
    except KeyboardInterrupt:
        pass


@app.command("check")
def check(config: ConfigOpt = None, rules_dir: RulesDirOpt = None, subscribers: SubscribersOpt = None) -> None:
    """Validate the rules (defaults and per-park files) and the subscribers file; print a summary."""
    from analytics.alerts.rules import RulesError, load_rulebook
    from analytics.alerts.subscribers import load_subscribers

    settings = _settings(config)
    try:
        registry = load_registry(settings.registry)
        book = load_rulebook(registry, _rules_dir(settings, rules_dir)[1])
        subs = load_subscribers(subscribers, registry)
    except (RegistryError, RulesError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"default rules {book.default.revision}: {len(book.default.rules)} enabled")
    for park, ruleset in book.parks.items():
        typer.echo(f"park {park} rules {ruleset.revision}: {len(ruleset.rules)} enabled, {len(ruleset.quotas)} quotas")
    typer.echo(f"subscribers: {len(subs)}")


@app.command("list")
def list_alerts(config: ConfigOpt = None, store: StoreOpt = None,
                state: Annotated[str | None, typer.Option(help="raised|acknowledged|cleared|closed")] = None,
                category: Annotated[str | None, typer.Option(help="energy|safety|environment")] = None,
                limit: int = 50) -> None:
    """Print alerts as JSON lines, newest first."""
    from analytics.alerts.store import AlertFilter, AlertStore

    db = AlertStore(_store_path(_settings(config), store))
    try:
        items, total = db.list(AlertFilter(categories=(category,) if category else None, state=state, limit=limit))
    finally:
        db.close()
    for item in items:
        typer.echo(json.dumps(item, ensure_ascii=False))
    typer.echo(f"# {len(items)} of {total}", err=True)


@app.command("ack")
def ack(alert_id: str, user: Annotated[str, typer.Option(help="who acknowledges")],
        comment: Annotated[str, typer.Option(help="comment")] = "", config: ConfigOpt = None,
        store: StoreOpt = None) -> None:
    """Acknowledge an alert."""
    from analytics.alerts.store import AlertConflict, AlertNotFound, AlertStore

    db = AlertStore(_store_path(_settings(config), store))
    try:
        alert = db.acknowledge(alert_id, user, comment)
    except (AlertNotFound, AlertConflict) as exc:
        typer.echo(f"cannot acknowledge {alert_id}: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        db.close()
    typer.echo(json.dumps(alert, ensure_ascii=False))
