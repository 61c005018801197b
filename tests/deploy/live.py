"""A live gateway (`bessai run` in a subprocess, embedded simulator) and a real Prometheus
scraping it with the shipped site scrape job and rules, for the dashboard and rule tests."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pymodbus.client import ModbusTcpClient

from tests.deploy.conftest import DEPLOY, prometheus_binary
from tests.process import LOOPBACK, free_port, stop_process, wait_for_port, wait_ready

GATEWAY_TOML = """\
[gateway]
data_dir = "var"
http_host = "127.0.0.1"
http_port = {http_port}
status_display = false

[[sites]]
id = "demo"
cycle_s = 0.5
devices = [{{ host = "127.0.0.1", port = 0, unit_id = 1 }}]
simulator = {{ enabled = true, speed = 60.0 }}
optimizer = {{ enabled = true, prices = "builtin:crucero-2023", replay = true }}
safety = {{ stale_after_s = 5.0 }}

[proxy]
enabled = true
host = "127.0.0.1"
port = {proxy_port}

[carbon]
interval_s = 1

[[telemetry.sinks]]
type = "lake"
path = "lake"
flush_interval_s = 1
"""


@dataclass(frozen=True)
class Gateway:
    """A running `bessai run`: its HTTP base URL and its Modbus proxy port."""

    url: str
    proxy_port: int


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    def ready() -> bool:
        return httpx.get(url, timeout=1).status_code == 200

    wait_ready(proc, ready, log, name=f"{proc.args!r} for {url}", timeout_s=timeout_s)


@contextlib.contextmanager
def run_bessai(
    args: list[str], workdir: Path, env: dict[str, str] | None = None, name: str = "bessai"
) -> Iterator[subprocess.Popen[bytes]]:
    """`bessai ARGS` in a subprocess (this interpreter, this source tree), stopped by SIGTERM."""
    log = workdir / f"{name}.log"
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bessai.cli", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=workdir,
        )
    try:
        yield proc
    finally:
        stop_process(proc, 15)


def wait_http(url: str, proc: subprocess.Popen[bytes], workdir: Path, name: str) -> None:
    """Until `url` answers 200; the process's log in the error when it does not."""
    _wait_http(url, proc, workdir / f"{name}.log", 60)


@contextlib.contextmanager
def run_gateway(workdir: Path) -> Iterator[Gateway]:
    """`bessai run --config` on a simulator site with the proxy, carbon and a lake sink."""
    http_port, proxy_port = free_port(), free_port()
    config = workdir / "site.toml"
    config.write_text(GATEWAY_TOML.format(http_port=http_port, proxy_port=proxy_port))
    args = ["run", "--config", str(config), "--no-status"]
    with run_bessai(args, workdir, name="gateway") as proc:
        url = f"http://{LOOPBACK}:{http_port}"
        wait_http(f"{url}/metrics", proc, workdir, "gateway")
        wait_for_port(proxy_port, 30)
        yield Gateway(url, proxy_port)


def drive_proxy(port: int) -> None:
    """A third-party client through the proxy: a read (answered) and a write it may not make
    (refused), so the proxy's request and write counters have samples."""
    client = ModbusTcpClient(LOOPBACK, port=port, timeout=3, retries=1)
    assert client.connect()
    try:
        client.read_holding_registers(37760, count=1, device_id=1)
        client.write_register(47100, 1, device_id=1)
    finally:
        client.close()


@dataclass(frozen=True)
class Stack:
    """A shipped compose stack's Prometheus: its folder under deploy/compose and scrape job."""

    folder: str
    job: str


SITE_STACK = Stack("site", "bessai-gateway")
FLEET_STACK = Stack("fleet", "bessai-fleet")


def prometheus_config(target: str, stack: Stack = SITE_STACK) -> dict[str, Any]:
    """The stack's shipped Prometheus config, scraping `target` every second, with its rules."""
    shipped = yaml.safe_load((DEPLOY / "compose" / stack.folder / "prometheus.yml").read_text())
    job = next(j for j in shipped["scrape_configs"] if j["job_name"] == stack.job)
    job["static_configs"] = [{"targets": [target]}]
    rules = DEPLOY / "prometheus" / "rules"
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules / Path(p).name) for p in shipped["rule_files"]],
        "scrape_configs": [job],
    }


@contextlib.contextmanager
def run_prometheus(workdir: Path, target: str, stack: Stack = SITE_STACK) -> Iterator[str]:
    """A real Prometheus server on a free loopback port; yields its base URL."""
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(target, stack)))
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                prometheus_binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address={LOOPBACK}:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://{LOOPBACK}:{port}"
        _wait_http(f"{url}/-/ready", proc, log, 30)
        yield url
    finally:
        stop_process(proc, 15)


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    """An instant query; raises on a PromQL error."""
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    if answer["status"] != "success":
        raise AssertionError(f"{expr}: {answer.get('errorType')}: {answer.get('error')}")
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def wait_for_samples(prometheus: str, expr: str, timeout_s: float = 60) -> None:
    """Until `expr` returns data (enough scrapes for rate() and the recording rules)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if query(prometheus, expr):
            return
        time.sleep(0.25)
    raise TimeoutError(f"no data for {expr} after {timeout_s} s")


def exported_names(metrics_text: str) -> set[str]:
    """Every sample name in a /metrics body (`bessai_cycles_total`, `..._bucket`, ...)."""
    return {
        sample.name
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
    }


# -- metric names in PromQL ----------------------------------------------------------------------

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_LABELS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\b\s*(?:\([^)]*\))?")
_NAME = re.compile(r"(?<![\w$.])([a-zA-Z_:][\w:]*)\b(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric (or recording rule) names a PromQL expression selects."""
    bare = _GROUPING.sub(" ", _RANGES.sub(" ", _LABELS.sub(" ", _STRINGS.sub('""', expr))))
    return {m for m in _NAME.findall(bare) if m.lower() not in _KEYWORDS}
