"""Every Grafana panel's query returns data from a real Prometheus scraping a running gateway
(`bessai run` on its simulator), with the shipped scrape job and rules: no panel may name a
metric the code does not export.

Panels of the fleet backend name their agreed metrics (fleet_*). Until the code exports them
they are skipped with that reason; once it does, their test fails until it runs them against
the live fleet service. The security monitor's (ids_*) run against the gateway, which has it on
by default."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy.conftest import DEPLOY, ROOT
from tests.deploy.live import (
    drive_proxy,
    exported_names,
    metric_names,
    query,
    run_gateway,
    run_prometheus,
    wait_for_samples,
)

DASHBOARDS = DEPLOY / "grafana" / "dashboards"
RULES = DEPLOY / "prometheus" / "rules"
SRC = ROOT / "src" / "bessai"

# Metrics of services that are not on this branch yet: prefix -> (service, how to run it).
PENDING = {
    "fleet_": ("the fleet backend (issue 15)", "a live `bessai fleet serve`"),
}


def _substitute(expr: str) -> str:
    """Grafana's variables as the dashboard's defaults resolve them (All sites)."""
    return expr.replace("$site", ".*").replace("$__rate_interval", "15s")


def _targets() -> list[Any]:
    params = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                params.append(
                    pytest.param(
                        target["expr"],
                        target["legendFormat"],
                        id=f"{path.stem}:{panel['id']}{target['refId']}:{panel['title'][:40]}",
                    )
                )
    return params


def _recording_rules() -> set[str]:
    names = set()
    for path in RULES.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {r["record"] for r in group["rules"] if "record" in r}
    return names


def _exported_by_code(name: str) -> bool:
    return any(name in p.read_text() for p in SRC.rglob("*.py"))


def _pending(expr: str) -> str | None:
    """Why this query cannot be checked against the gateway, or None."""
    names = metric_names(expr)
    if 'job="bessai-fleet"' in expr:
        names.add("fleet_sites_active")
    for name in sorted(names):
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


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(Prometheus URL, the gateway's /metrics text) after enough scrapes for rate()."""
    workdir = tmp_path_factory.mktemp("live")
    with run_gateway(workdir) as gateway:
        target = gateway.url.removeprefix("http://")
        with run_prometheus(workdir, target) as prometheus:
            drive_proxy(gateway.proxy_port)
            # The slowest series: a 5-minute recording rule over the histogram, carbon booked
            # per 1 s interval, the proxy's counters scraped twice, the lake's first flush.
            wait_for_samples(prometheus, "site:bessai_cycle_duration_seconds:p95_5m")
            wait_for_samples(prometheus, "bessai_carbon_avoided_kg")
            wait_for_samples(prometheus, "rate(bessai_proxy_writes_total[15s])")
            wait_for_samples(prometheus, "site:bessai_modbus_errors:ratio_rate5m")
            wait_for_samples(prometheus, "bessai_sink_last_ack_timestamp_seconds > 0")
            yield prometheus, httpx.get(f"{gateway.url}/metrics", timeout=5).text


@pytest.mark.parametrize(("expr", "legend"), _targets())
def test_panel_query_returns_data(live: tuple[str, str], expr: str, legend: str) -> None:
    """Data for the query, and every label its legend names (`{{site}}`) on every series."""
    prometheus, _ = live
    reason = _pending(expr)
    if reason is not None:
        query(prometheus, _substitute(expr))  # valid PromQL even before its service lands
        pytest.skip(reason)
    result = query(prometheus, _substitute(expr))
    assert result, f"no data: {expr}"
    for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", legend):
        assert all(label in series["metric"] for series in result), (legend, result)


def test_panels_name_only_exported_metrics_or_recording_rules(live: tuple[str, str]) -> None:
    _, metrics_text = live
    known = exported_names(metrics_text) | _recording_rules() | {"up"}
    unknown = {}
    for param in _targets():
        expr = str(param.values[0])
        if _pending(expr) is None:
            missing = metric_names(expr) - known
            if missing:
                unknown[expr] = sorted(missing)
    assert not unknown, unknown


def test_gateway_rules_name_only_exported_metrics(live: tuple[str, str]) -> None:
    _, metrics_text = live
    known = exported_names(metrics_text) | _recording_rules() | {"up"}
    doc = yaml.safe_load((RULES / "gateway.rules.yml").read_text())
    unknown = {
        r.get("alert") or r["record"]: sorted(metric_names(r["expr"]) - known)
        for g in doc["groups"]
        for r in g["rules"]
        if metric_names(r["expr"]) - known
    }
    assert not unknown, unknown


def test_site_variables_have_values(live: tuple[str, str]) -> None:
    prometheus, _ = live
    for path in sorted(DASHBOARDS.glob("*.json")):
        for variable in json.loads(path.read_text())["templating"]["list"]:
            if variable["type"] != "query":
                continue
            metric = variable["definition"].removeprefix("label_values(").split(",")[0]
            values = httpx.get(
                f"{prometheus}/api/v1/label/{variable['name']}/values",
                params={"match[]": metric},
                timeout=5,
            ).json()["data"]
            assert values == ["demo"], (path.name, variable["definition"])


def test_committed_dashboards_are_what_the_generator_makes() -> None:
    result = subprocess.run(
        [sys.executable, str(DEPLOY / "grafana" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_metric_names_in_promql() -> None:
    expr = (
        "histogram_quantile(0.5, sum by (site, le) "
        '(rate(x_bucket{site=~"$site"}[$__rate_interval])))'
        " / on (site) group_left y:z:rate5m and time() - w offset 5m > bool 0"
    )
    assert metric_names(expr) == {"x_bucket", "y:z:rate5m", "w"}


def test_uids_are_unique_and_panels_fit_the_grid() -> None:
    uids = []
    for path in DASHBOARDS.glob("*.json"):
        board = json.loads(path.read_text())
        uids.append(board["uid"])
        for panel in board["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, (path.name, panel["title"])
            assert panel["targets"], (path.name, panel["title"])
    assert len(uids) == len(set(uids)) == 4


def test_rules_evaluate_without_error_and_stay_quiet_on_a_healthy_gateway(
    live: tuple[str, str],
) -> None:
    """The shipped rules, loaded by the live Prometheus: every rule evaluates (no many-to-many
    match, no type error at run time) and no alert fires on a healthy demo gateway."""
    prometheus, _ = live
    deadline = time.monotonic() + 10
    while True:  # every group evaluated at least once (1 s interval)
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if all(r["health"] != "unknown" for r in rules) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(rules) == sum(
        len(group["rules"])
        for name in ("gateway.rules.yml", "security.rules.yml")
        for group in yaml.safe_load((RULES / name).read_text())["groups"]
    )
    broken = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert not broken, broken
    firing = [r["name"] for r in rules if r["type"] == "alerting" and r["state"] == "firing"]
    assert not firing, firing
