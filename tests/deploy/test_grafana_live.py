"""Every Grafana panel's query returns data from a real Prometheus scraping a running gateway
(`bessai run` on its simulator), with the shipped scrape job and rules: no panel may name a
metric the code does not export. The fleet backend's panels run against a live fleet
service in test_grafana_fleet_live.py.

The security monitor's panels (ids_*) run against the gateway, which has the monitor on by
default. A panel of a service that is not built yet can be listed in `panels.PENDING`: skipped
with that reason until the code exports its metric, then failing until it runs live."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.deploy.conftest import DEPLOY
from tests.deploy.live import (
    drive_proxy,
    exported_names,
    metric_names,
    run_gateway,
    run_prometheus,
    wait_for_samples,
)
from tests.deploy.panels import (
    DASHBOARDS,
    GATEWAY,
    check_panel,
    check_rules_healthy_and_quiet,
    pending,
    recording_rules,
    rule_exprs,
    targets,
    unknown_metrics,
)


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


@pytest.mark.parametrize(("expr", "legend"), targets(GATEWAY))
def test_panel_query_returns_data(live: tuple[str, str], expr: str, legend: str) -> None:
    """Data for the query, and every label its legend names (`{{site}}`) on every series."""
    prometheus, _ = live
    check_panel(prometheus, expr, legend)


def test_panels_name_only_exported_metrics_or_recording_rules(live: tuple[str, str]) -> None:
    _, metrics_text = live
    known = exported_names(metrics_text) | recording_rules() | {"up"}
    exprs = (str(param.values[0]) for param in targets(GATEWAY))
    unknown = unknown_metrics({e: e for e in exprs if pending(e) is None}, known)
    assert not unknown, unknown


def test_gateway_rules_name_only_exported_metrics(live: tuple[str, str]) -> None:
    _, metrics_text = live
    known = exported_names(metrics_text) | recording_rules() | {"up"}
    unknown = unknown_metrics(rule_exprs("gateway.rules.yml"), known)
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
    check_rules_healthy_and_quiet(prometheus, ("gateway.rules.yml", "security.rules.yml"))
