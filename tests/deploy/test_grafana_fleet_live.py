"""Every fleet panel's query returns data from a real Prometheus scraping a live fleet service,
with the fleet stack's shipped scrape job and rules: a gateway on an embedded simulator
publishes to NATS JetStream, `bessai fleet serve` consumes it into PostgreSQL and exports
fleet_* on /metrics. No fleet panel or rule may name a metric the fleet does not export."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bessai.runtime.service import Runtime
from tests.deploy.live import (
    FLEET_STACK,
    exported_names,
    metric_names,
    run_prometheus,
    wait_for_samples,
)
from tests.deploy.panels import (
    FLEET,
    check_panel,
    check_rules_healthy_and_quiet,
    recording_rules,
    rule_exprs,
    targets,
    unknown_metrics,
)
from tests.fleet.harness import FleetProcess, make_gateway
from tests.fleet.pg import pg_cluster
from tests.process import LOOPBACK
from tests.telemetry.brokers import nats_process

pytestmark = pytest.mark.slow

RATED = re.compile(r"\b(?:rate|irate|increase)\(\s*(fleet_\w+)")


@contextlib.contextmanager
def running(gateway: Runtime) -> Iterator[Runtime]:
    """The gateway runtime on its own event loop in a thread: it keeps cycling and publishing
    while the (synchronous) tests query Prometheus."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fleet-gateway", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(gateway.start(), loop).result(60)
        yield gateway
    finally:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(gateway.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(scope="module")
def live_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(Prometheus URL, the fleet service's /metrics text) once every fleet series has a value:
    PostgreSQL, nats-server JetStream, one gateway publishing, `bessai fleet serve`."""
    workdir = tmp_path_factory.mktemp("live-fleet")
    nats = nats_process(workdir)
    nats.start()
    try:
        with pg_cluster() as pg:
            fleet = FleetProcess.create(workdir / "fleet", pg.new_database(), nats.port)
            fleet.start()
            try:
                gateway = make_gateway(workdir, "demo", nats.port, cycle_s=0.5)
                with (
                    running(gateway),
                    run_prometheus(workdir, f"{LOOPBACK}:{fleet.port}", FLEET_STACK) as prom,
                ):
                    # The site reported (the view counts it), the consumer's lag was polled
                    # (NaN before) and the recording rules have evaluated it.
                    wait_for_samples(prom, "fleet_sites_active > 0")
                    wait_for_samples(prom, "fleet_total_capacity_kwh > 0")
                    wait_for_samples(prom, "job:fleet_consumer_lag_messages:max >= 0")
                    wait_for_samples(prom, "job:fleet_sites_active:max > 0")
                    yield prom, httpx.get(fleet.url("/metrics"), timeout=5).text
            finally:
                fleet.stop()
    finally:
        nats.kill()


@pytest.mark.parametrize(("expr", "legend"), targets(FLEET))
def test_fleet_panel_query_returns_data(
    live_fleet: tuple[str, str], expr: str, legend: str
) -> None:
    """Data for the query, every label its legend names on every series, and numbers."""
    prometheus, _ = live_fleet
    check_panel(prometheus, expr, legend, numbers=True)


def test_fleet_panels_and_rules_name_only_exported_metrics(live_fleet: tuple[str, str]) -> None:
    _, metrics_text = live_fleet
    known = exported_names(metrics_text) | recording_rules() | {"up"}
    panels = {str(p.values[0]): str(p.values[0]) for p in targets(FLEET)}
    assert not unknown_metrics(panels, known)
    assert not unknown_metrics(rule_exprs("fleet.rules.yml"), known)


def test_fleet_panels_and_rules_read_each_metric_as_its_type(live_fleet: tuple[str, str]) -> None:
    """What the fleet panels and rules take rate() of is a counter (`..._total`); what they
    read raw (max, sum, comparisons) is a gauge."""
    _, metrics_text = live_fleet
    types = {f.name: f.type for f in text_string_to_metric_families(metrics_text)}
    exprs = [str(p.values[0]) for p in targets(FLEET)] + list(
        rule_exprs("fleet.rules.yml").values()
    )
    read = {name for expr in exprs for name in metric_names(expr) if name.startswith("fleet_")}
    rated = {name for expr in exprs for name in RATED.findall(expr)}
    assert rated <= read
    assert {n: types.get(n.removesuffix("_total")) for n in rated} == dict.fromkeys(
        rated, "counter"
    )
    assert {n: types.get(n) for n in read - rated} == dict.fromkeys(read - rated, "gauge")


def test_fleet_rules_evaluate_without_error_and_stay_quiet(live_fleet: tuple[str, str]) -> None:
    """The fleet stack's rules, loaded by the live Prometheus: every rule evaluates and no
    alert fires on a healthy fleet with a site reporting."""
    prometheus, _ = live_fleet
    check_rules_healthy_and_quiet(prometheus, ("fleet.rules.yml",))
