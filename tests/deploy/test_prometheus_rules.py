"""The Prometheus rules of deploy/prometheus: `promtool check rules` accepts them, `promtool
test rules` passes, and every alert has a unit test that makes it fire."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, prometheus_binary

RULES = DEPLOY / "prometheus" / "rules"
TESTS = DEPLOY / "prometheus" / "tests"


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [prometheus_binary("promtool"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _rule_files() -> list[Path]:
    return sorted(RULES.glob("*.yml"))


def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", *_rule_files())
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    tests = sorted(TESTS.glob("*.test.yml"))
    assert len(tests) == len(_rule_files())
    result = _promtool("test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr


def _alerts(path: Path) -> set[str]:
    doc = yaml.safe_load(path.read_text())
    return {r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r}


def _fired_in_tests(path: Path) -> set[str]:
    doc = yaml.safe_load(path.read_text())
    return {
        case["alertname"]
        for test in doc["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }


@pytest.mark.parametrize("rules", _rule_files(), ids=lambda p: p.name)
def test_every_alert_is_tested_firing(rules: Path) -> None:
    tests = TESTS / rules.name.replace(".rules.yml", ".test.yml")
    untested = _alerts(rules) - _fired_in_tests(tests)
    assert not untested, f"alerts never shown firing in {tests.name}: {sorted(untested)}"


@pytest.mark.parametrize("rules", _rule_files(), ids=lambda p: p.name)
def test_every_alert_has_severity_and_summary(rules: Path) -> None:
    doc = yaml.safe_load(rules.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule
                assert rule["annotations"]["summary"], rule
