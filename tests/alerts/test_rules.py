"""Rule and subscriber files: shipped defaults validate, parks override, errors name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from analytics.alerts.rules import DEFAULT_RULES, RulesError, ThresholdRule, default_rulebook, load_rulebook
from analytics.alerts.subscribers import parse_subscribers
from tests.conftest import make_registry


def test_defaults_carry_the_standard_set_points_with_sources() -> None:
    rs = default_rulebook().default
    lel = rs.get("gas_lel")
    assert isinstance(lel, ThresholdRule)
    assert [lv.raise_at for lv in lel.levels] == [25, 50] and "GB/T 50493-2019" in lel.source
    assert [lv.raise_at for lv in rs.get("gas_h2s").levels] == [7, 14]
    assert [lv.raise_at for lv in rs.get("gas_co").levels] == [17, 34]
    assert [lv.raise_at for lv in rs.get("env_so2").levels] == [150, 500]
    assert [lv.raise_at for lv in rs.get("env_no2").levels] == [80, 200]
    assert rs.get("env_pm25").levels[0].raise_at == 75 and rs.get("env_pm10").levels[0].raise_at == 150
    assert all(r.source for r in rs.rules)
    assert yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))["version"] == 1


def test_park_override_merges_by_id_disables_and_sets_quotas(tmp_path: Path, uid: str) -> None:
    reg = make_registry(uid)
    (tmp_path / f"p{uid}.yaml").write_text(yaml.safe_dump({
        "version": 1, "revision": "site-1",
        "rules": [{"id": "gas_lel", "on_delay_s": 2}, {"id": "load_anomaly", "enabled": False}],
        "quotas": {f"e{uid}-0": 5000},
    }))
    book = load_rulebook(reg, tmp_path)
    park = book.for_park(f"p{uid}")
    assert park.get("gas_lel").on_delay_s == 2 and park.get("gas_lel").levels[0].raise_at == 25
    assert park.get("load_anomaly") is None and park.quotas == {f"e{uid}-0": 5000}
    assert park.revision.endswith("site-1")
    assert book.for_park("other").get("gas_lel").on_delay_s == 0


@pytest.mark.parametrize(("override", "expected"), [
    ({"version": 1, "rules": [{"id": "gas_lel", "clear": 30}]}, "rules[gas_lel]"),
    ({"version": 1, "rules": [{"id": "gas_lel", "levels": [{"raise": 50, "severity": "warning"},
                                                           {"raise": 25, "severity": "critical"}]}]},
     "strictly increasing"),
    ({"version": 1, "rules": [{"id": "x1", "kind": "threshold", "category": "safety", "point": "lel_ppm",
                               "roles": ["gas_detector"], "levels": [{"raise": 1, "severity": "info"}],
                               "clear": 0, "name_zh": "a", "name_en": "b", "source": "c"}]}, "rules[x1].point"),
    ({"version": 1, "rules": [{"id": "gas_co", "levels": [{"raise": 17, "severity": "loud"}]}]},
     "rules[gas_co].levels.0.severity"),
    ({"version": 2, "rules": []}, "version"),
    ({"version": 1, "quotas": {"nobody": 10}}, "quotas.nobody"),
    ({"version": 1, "rulez": []}, "unknown keys"),
])
def test_bad_override_names_file_and_key(tmp_path: Path, uid: str, override: dict, expected: str) -> None:
    path = tmp_path / f"p{uid}.yaml"
    path.write_text(yaml.safe_dump(override))
    with pytest.raises(RulesError) as err:
        load_rulebook(make_registry(uid), tmp_path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_override_for_an_unknown_park_is_refused(tmp_path: Path, uid: str) -> None:
    (tmp_path / "nopark.yaml").write_text("version: 1\n")
    with pytest.raises(RulesError, match=r"nopark\.yaml: no park 'nopark'"):
        load_rulebook(make_registry(uid), tmp_path)


def test_subscribers_validate_scope_and_secret(uid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = make_registry(uid)
    subs = parse_subscribers({"version": 1, "subscribers": [
        {"id": "em", "url": "http://127.0.0.1:9/h", "secret": "s3", "scope": {"categories": ["safety"]}},
    ]}, "subs.yaml", reg)
    alert = {"park": f"p{uid}", "enterprise": f"e{uid}-0", "category": "safety"}
    assert subs[0].wants(alert) and not subs[0].wants({**alert, "category": "energy"})
    with pytest.raises(RulesError, match=r"(?s)subs.yaml: .*subscribers\[em\]: .*exactly one of secret"):
        parse_subscribers({"version": 1, "subscribers": [{"id": "em", "url": "http://x/"}]}, "subs.yaml")
    with pytest.raises(RulesError, match=r"subscribers\[em\].scope.enterprises: unknown enterprise 'zz'"):
        parse_subscribers({"version": 1, "subscribers": [
            {"id": "em", "url": "http://x/", "secret": "s", "scope": {"enterprises": ["zz"]}}]}, "subs.yaml", reg)
    monkeypatch.delenv("NO_SUCH_SECRET_VAR", raising=False)
    with pytest.raises(RulesError, match="NO_SUCH_SECRET_VAR is not set"):
        parse_subscribers({"version": 1, "subscribers": [
            {"id": "em", "url": "http://x/", "secret_env": "NO_SUCH_SECRET_VAR"}]}, "subs.yaml")
