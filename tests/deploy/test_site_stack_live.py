"""The site stack's containers, run as their commands on loopback (no container runtime here):
the simulator service's command, the gateway's `bessai run` with the shipped site.toml mounted
as is (only the compose network names and the volume path overridden through BESSAI_*
variables, as an operator would), mosquitto with the shipped mosquitto.conf, and the image's
HEALTHCHECK command, run literally, against the gateway."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.deploy.conftest import DEPLOY
from tests.deploy.images import compose, dockerfile, final_stage, one
from tests.deploy.live import LOOPBACK, run_bessai, wait_http
from tests.process import find_binary, free_port, wait_for_port
from tests.telemetry.brokers import BrokerProcess

SITE = DEPLOY / "compose" / "site"


def _overrides(http_port: int, sim_port: int, mqtt_port: int, data_dir: Path) -> dict[str, str]:
    return {
        "BESSAI_GATEWAY__HTTP_HOST": LOOPBACK,
        "BESSAI_GATEWAY__HTTP_PORT": str(http_port),
        "BESSAI_GATEWAY__DATA_DIR": str(data_dir),
        "BESSAI_SITES__0__DEVICES__0__HOST": LOOPBACK,
        "BESSAI_SITES__0__DEVICES__0__PORT": str(sim_port),
        "BESSAI_TELEMETRY__SINKS__0__HOST": LOOPBACK,
        "BESSAI_TELEMETRY__SINKS__0__PORT": str(mqtt_port),
        # A site starts in SAFE until sites.safety.recovery_cycles good cycles: 1 s cycles
        # instead of 5 s make it healthy in seconds (the image's start period allows 60 s).
        "BESSAI_SITES__0__CYCLE_S": "1.0",
    }


def _healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    argv = one(final_stage(dockerfile()), "HEALTHCHECK").exec_form()
    assert argv[0] == "python"
    return subprocess.run(
        [sys.executable, *argv[1:]],
        env={**os.environ, "BESSAI_HEALTH_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


def shipped_mosquitto(workdir: Path) -> BrokerProcess:
    """The `mosquitto` service: the shipped mosquitto.conf, with only the container's listener
    and volume path moved to a free loopback port and a temp dir."""
    port = free_port()
    data = workdir / "mosquitto-data"
    data.mkdir()
    shipped = (SITE / "mosquitto.conf").read_text()
    assert "listener 1883\n" in shipped
    assert "persistence_location /mosquitto/data/\n" in shipped
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        shipped.replace("listener 1883\n", f"listener {port} {LOOPBACK}\n").replace(
            "/mosquitto/data/", f"{data}/"
        )
        # As root mosquitto would switch to user `mosquitto` (the image runs as it already).
        + f"user {getpass.getuser()}\n"
    )
    return BrokerProcess(
        "mosquitto", [find_binary("mosquitto"), "-c", str(conf)], port, workdir / "mosquitto.log"
    )


def _metric(url: str, line_start: str) -> str:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return next((line for line in text.splitlines() if line.startswith(line_start)), "")


def _wait_mqtt_connected(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _metric(url, 'bessai_sink_state{sink="mqtt",state="connected"}').endswith("1.0"):
            return
        time.sleep(0.2)
    pytest.fail(f"the mqtt sink never connected:\n{httpx.get(url + '/metrics').text}")


@pytest.mark.slow
def test_site_stack_commands_run_the_gateway_healthy(tmp_path: Path) -> None:
    stack = compose(SITE / "compose.yaml")["services"]
    mosquitto = shipped_mosquitto(tmp_path)
    mosquitto.start()
    sim_port, http_port = free_port(), free_port()
    sim_cmd = list(stack["simulator"]["command"])
    sim_cmd[sim_cmd.index("--host") + 1] = LOOPBACK
    sim_cmd[sim_cmd.index("--port") + 1] = str(sim_port)
    gateway_cmd = list(stack["gateway"]["command"])
    gateway_cmd[gateway_cmd.index("--config") + 1] = str(SITE / "site.toml")
    env = _overrides(http_port, sim_port, mosquitto.port, tmp_path / "var")
    try:
        with run_bessai(sim_cmd, tmp_path, name="simulator"):
            wait_for_port(sim_port, 30)
            with run_bessai(gateway_cmd, tmp_path, env, name="gateway") as gateway:
                url = f"http://{LOOPBACK}:{http_port}"
                wait_http(f"{url}/health", gateway, tmp_path, "gateway")
                assert _healthcheck(http_port).returncode == 0
                _wait_mqtt_connected(url)
                assert (tmp_path / "var" / "outbox.sqlite").exists()
    finally:
        mosquitto.stop()
    # Stopped: the health check fails, as Docker would mark the container unhealthy.
    assert _healthcheck(http_port).returncode != 0
