"""`smartpark alerts check | list | ack`: validation errors name file and key; list and ack work on the store."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from analytics.alerts.cli import app
from analytics.alerts.store import AlertDraft, AlertStore

runner = CliRunner()


def test_check_accepts_the_shipped_rules_and_names_a_bad_key(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["check"])
    assert ok.exit_code == 0, ok.output
    assert "default rules 2025.1" in ok.output
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "otog.yaml").write_text(yaml.safe_dump({"version": 1, "rules": [{"id": "gas_h2s", "clear": 99}]}))
    bad = runner.invoke(app, ["check", "--rules-dir", str(rules)])
    assert bad.exit_code == 2 and "otog.yaml" in bad.output and "rules[gas_h2s]" in bad.output


def test_list_and_ack(tmp_path: Path) -> None:
    path = tmp_path / "alerts.sqlite"
    store = AlertStore(path)
    (_, alert), = store.raise_or_repeat(AlertDraft(
        rule="fire_alarm", source="device/f1", category="safety", severity="critical", level=1, park="p", enterprise="e",
        device="f1", point="smoke_alarm", location="", value=1, limit=1, message_zh="", message_en=""), change="raise")
    store.close()
    listed = runner.invoke(app, ["list", "--store", str(path)])
    assert listed.exit_code == 0 and json.loads(listed.stdout.splitlines()[0])["id"] == alert["id"]
    acked = runner.invoke(app, ["ack", alert["id"], "--user", "li.si", "--comment", "drill", "--store", str(path)])
    assert acked.exit_code == 0 and json.loads(acked.stdout)["state"] == "acknowledged"
    again = runner.invoke(app, ["ack", alert["id"], "--user", "li.si", "--store", str(path)])
    assert again.exit_code == 1 and "acknowledged" in again.output
