"""The Grafana panels and Prometheus rules under test, and the checks the live tests run on
them: which service a panel's query needs (the gateway or the fleet backend), its query
against a live Prometheus, and the state of the rules that Prometheus evaluates."""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy.conftest import DEPLOY, ROOT
from tests.deploy.live import metric_names, query

DASHBOARDS = DEPLOY / "grafana" / "dashboards"
RULES = DEPLOY / "prometheus" / "rules"
SRC = ROOT / "src" / "bessai"

GATEWAY = "gateway"
FLEET = "fleet"

# Metrics of services that are not on this branch yet: prefix -> (service, how to run it).
PENDING: dict[str, tuple[str, str]] = {}


def substitute(expr: str) -> str:
    """Grafana's variables as the dashboard's defaults resolve them (All sites)."""
    return expr.replace("$site", ".*").replace("$__rate_interval", "15s")


def service_of(expr: str) -> str:
    """The service whose metrics a query reads: the fleet backend's (`fleet_*`, recording
    rules over them, its scrape job) or the gateway's."""
    if 'job="bessai-fleet"' in expr:
        return FLEET
    parts = (part for name in metric_names(expr) for part in name.split(":"))
    return FLEET if any(part.startswith("fleet_") for part in parts) else GATEWAY


def targets(service: str) -> list[Any]:
    """Every panel target of the dashboards whose query reads `service`'s metrics."""
    params = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                if service_of(target["expr"]) != service:
                    continue
                params.append(
                    pytest.param(
                        target["expr"],
                        target["legendFormat"],
                        id=f"{path.stem}:{panel['id']}{target['refId']}:{panel['title'][:40]}",
                    )
                )
    return params


def recording_rules() -> set[str]:
    """The names every shipped rule file records."""
    names = set()
    for path in RULES.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {r["record"] for r in group["rules"] if "record" in r}
    return names


def _exported_by_code(name: str) -> bool:
    return any(name in p.read_text() for p in SRC.rglob("*.py"))


def pending(expr: str) -> str | None:
    """Why this query cannot be checked against a live service yet, or None."""
    for name in sorted(metric_names(expr)):
        for part in name.split(":"):  # a recording rule: level:metric:operations
            for prefix, (service, live) in PENDING.items():
                if not part.startswith(prefix):
                    continue
                if not _exported_by_code(part):
                    return f"{part} is not exported by the code yet ({service}); check with {live}"
                pytest.fail(
                    f"{part} is exported by the code now: run this panel against {live} "
                    "(make this test strict)"
                )
    return None


def check_panel(prometheus: str, expr: str, legend: str, *, numbers: bool = False) -> None:
    """Data for the query, and every label its legend names (`{{site}}`) on every series;
    with `numbers`, every value is a number (not NaN: a gauge the service has not set)."""
    reason = pending(expr)
    if reason is not None:
        query(prometheus, substitute(expr))  # valid PromQL even before its service lands
        pytest.skip(reason)
    # A rate() over a counter needs two scrapes of it inside its window: ask again for a while
    # rather than judge on the first scrape after the series appeared. A metric that is not
    # there still fails, after the wait.
    deadline = time.monotonic() + 20.0
    result = query(prometheus, substitute(expr))
    while not result and time.monotonic() < deadline:
        time.sleep(0.5)
        result = query(prometheus, substitute(expr))
    assert result, f"no data: {expr}"
    for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", legend):
        assert all(label in series["metric"] for series in result), (legend, result)
    if numbers:
        assert all(not math.isnan(float(s["value"][1])) for s in result), (expr, result)


def unknown_metrics(exprs: dict[str, str], known: set[str]) -> dict[str, list[str]]:
    """name -> the metrics its expression selects that are not in `known`."""
    return {
        name: sorted(metric_names(expr) - known)
        for name, expr in exprs.items()
        if metric_names(expr) - known
    }


def rule_exprs(file_name: str) -> dict[str, str]:
    """alert or record name -> expression, of one shipped rule file."""
    doc = yaml.safe_load((RULES / file_name).read_text())
    return {r.get("alert") or r["record"]: r["expr"] for g in doc["groups"] for r in g["rules"]}


def check_rules_healthy_and_quiet(prometheus: str, file_names: tuple[str, ...]) -> None:
    """The rules the live Prometheus loaded are exactly those of `file_names`; every one
    evaluates (no many-to-many match, no type error at run time) and no alert fires."""
    deadline = time.monotonic() + 10
    while True:  # every group evaluated at least once (1 s interval)
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if all(r["health"] != "unknown" for r in rules) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(rules) == sum(
        len(group["rules"])
        for file_name in file_names
        for group in yaml.safe_load((RULES / file_name).read_text())["groups"]
    )
    broken = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert not broken, broken
    firing = [r["name"] for r in rules if r["type"] == "alerting" and r["state"] == "firing"]
    assert not firing, firing
