"""Monitoring cost of a gateway, for sizing Prometheus: samples per scrape (fixed and per site),
the /metrics body, Prometheus's own scrape and rule-evaluation durations, and the time to run
every query of the site dashboard. A real `bessai run` (embedded simulators, 1 s cycles) and a
real Prometheus (Debian package) with the shipped scrape job and rules, scraping every second."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
WARMUP_S = 12.0
SITE_COUNTS = (1, 4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(sites: int, http_port: int) -> str:
    lines = [
        "[gateway]",
        'data_dir = "var"',
        'http_host = "127.0.0.1"',
        f"http_port = {http_port}",
        "status_display = false",
        "[carbon]",
        "interval_s = 1",
        "[[telemetry.sinks]]",
        'type = "lake"',
        'path = "lake"',
    ]
    for i in range(sites):
        lines += [
            "[[sites]]",
            f'id = "site{i}"',
            "cycle_s = 1.0",
            'devices = [{ host = "127.0.0.1", port = 0, unit_id = 1 }]',
            "simulator = { enabled = true, speed = 60.0 }",
        ]
    return "\n".join(lines) + "\n"


def _wait(url: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def _scalar(prometheus: str, expr: str) -> float:
    result = _query(prometheus, expr)
    if not result:
        raise RuntimeError(f"no data for {expr}")
    return round(float(result[0]["value"][1]), 6)


def _rule_eval_ms(prometheus: str) -> float:
    """Last evaluation time of every shipped rule group, summed (Prometheus's own figure)."""
    groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    return round(1000 * sum(float(g["evaluationTime"]) for g in groups), 3)


def _dashboard_queries() -> list[str]:
    board = json.loads((DEPLOY / "grafana" / "dashboards" / "site.json").read_text())
    return [
        t["expr"].replace("$site", ".*").replace("$__rate_interval", "15s")
        for panel in board["panels"]
        for t in panel["targets"]
    ]


def _prometheus_config(target: str) -> dict[str, Any]:
    shipped = yaml.safe_load((DEPLOY / "compose" / "site" / "prometheus.yml").read_text())
    job = shipped["scrape_configs"][0]
    job["static_configs"] = [{"targets": [target]}]
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [
            str(DEPLOY / "prometheus" / "rules" / Path(p).name) for p in shipped["rule_files"]
        ],
        "scrape_configs": [job],
    }


def _measure(sites: int, prometheus_bin: str, workdir: Path) -> dict[str, Any]:
    http_port, prom_port = _free_port(), _free_port()
    config = workdir / f"site{sites}.toml"
    config.write_text(_config(sites, http_port))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    gateway = subprocess.Popen(
        [sys.executable, "-m", "bessai.cli", "run", "--config", str(config), "--no-status"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    prom_yml = workdir / f"prometheus{sites}.yml"
    prom_yml.write_text(yaml.safe_dump(_prometheus_config(f"127.0.0.1:{http_port}")))
    prometheus = subprocess.Popen(
        [
            prometheus_bin,
            f"--config.file={prom_yml}",
            f"--storage.tsdb.path={workdir / f'tsdb{sites}'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        gateway_url, prom_url = f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{prom_port}"
        _wait(f"{gateway_url}/metrics")
        _wait(f"{prom_url}/-/ready")
        time.sleep(WARMUP_S)
        body = httpx.get(f"{gateway_url}/metrics", timeout=5).content
        queries = _dashboard_queries()
        timings = []
        for expr in queries:
            started = time.perf_counter()
            _query(prom_url, expr)
            timings.append(time.perf_counter() - started)
        return {
            "sites": sites,
            "samples_per_scrape": int(
                _scalar(prom_url, 'scrape_samples_scraped{job="bessai-gateway"}')
            ),
            "metrics_body_bytes": len(body),
            "scrape_duration_ms_avg": round(
                1000 * _scalar(prom_url, "avg_over_time(scrape_duration_seconds[10s])"), 2
            ),
            "rule_groups_eval_ms": _rule_eval_ms(prom_url),
            "site_dashboard_queries": len(queries),
            "site_dashboard_query_ms_total": round(1000 * sum(timings), 1),
            "site_dashboard_query_ms_max": round(1000 * max(timings), 1),
        }
    finally:
        _stop(prometheus)
        _stop(gateway)


def run() -> dict[str, Any]:
    """Figures for 1 and 4 sites, and the samples each site adds."""
    prometheus_bin = shutil.which("prometheus")
    if prometheus_bin is None:
        return {"skipped": "prometheus is not installed (make system-deps)"}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [_measure(n, prometheus_bin, Path(tmp)) for n in SITE_COUNTS]
    first, last = runs[0], runs[-1]
    per_site = (last["samples_per_scrape"] - first["samples_per_scrape"]) / (
        last["sites"] - first["sites"]
    )
    return {
        "runs": runs,
        "samples_per_site": round(per_site, 1),
        "samples_fixed": round(first["samples_per_scrape"] - per_site, 1),
    }
