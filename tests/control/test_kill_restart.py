"""The restart hazard with real processes: a gateway killed with SIGKILL mid forced discharge
leaves a device that stops on its own when the forcible period expires, and a restarted gateway
that no decision tells to discharge stops it at once."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bessai.modbus.client import ModbusDevice
from bessai.modbus.profile import load_builtin
from tests.conftest import FAST_SETTINGS

BESSAI = [sys.executable, "-m", "bessai.cli"]
SPEED = 30  # one plant minute every two wall seconds


@pytest.fixture
def sim_port() -> Iterator[int]:
    proc = subprocess.Popen(
        [
            *BESSAI,
            "sim",
            "--port",
            "0",
            "--speed",
            str(SPEED),
            "--multi-client",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    match = re.search(r":(\d+), unit ids", proc.stdout.readline())
    assert match
    yield int(match.group(1))
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=10)


def write_config(path: Path, port: int, *, discharge: bool, period_min: int) -> Path:
    rules = (
        '[[sites.controllers.time_of_use]]\nstart = "00:00"\nend = "24:00"\nsetpoint_w = -2000\n'
        if discharge
        else ""
    )
    path.write_text(
        f"""
[gateway]
data_dir = "{path.parent / "data"}"
http_port = 0
status_display = false

[[sites]]
id = "kill"
cycle_s = 0.5
slow_every = 2

[[sites.devices]]
host = "127.0.0.1"
port = {port}
wait_after_connect_s = 0.1
cooldown_s = 0.0
timeout_s = 1.0

[sites.dispatch]
forcible_period_min = {period_min}
refresh_s = 1.0

[sites.safety]
stale_after_s = 3.0

{rules}"""
    )
    return path


def start_gateway(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*BESSAI, "--log-level", "warning", "run", "--config", str(config), "--no-status"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


async def forcible_command(port: int) -> str:
    device = ModbusDevice("127.0.0.1", port, 1, [load_builtin("huawei_luna2000")], FAST_SETTINGS)
    try:
        result = await device.read_points(
            [b for b in device.bound_points() if b.point.name == "forcible_command"]
        )
        value = result.value("huawei_luna2000", "forcible_command")
        return str(value)
    finally:
        await device.close()


def wait_for(port: int, wanted: str, timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if asyncio.run(forcible_command(port)) == wanted:
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"forcible command did not become {wanted!r} within {timeout_s} s")


@pytest.mark.slow
def test_sigkill_then_device_side_expiry(sim_port: int, tmp_path: Path) -> None:
    config = write_config(tmp_path / "a.toml", sim_port, discharge=True, period_min=2)
    gateway = start_gateway(config)
    try:
        wait_for(sim_port, "discharge", 20)
        time.sleep(1.5)  # let it refresh at least once
    finally:
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(timeout=10)
    # Nobody refreshes the command any more: the 2-minute period (4 s of wall time at x30)
    # runs out on the device, which stops by itself.
    stopped_after_s = wait_for(sim_port, "stop", 15)
    assert stopped_after_s <= 2 * 60 / SPEED + 2.0


@pytest.mark.slow
def test_restarted_gateway_stops_what_no_decision_justifies(sim_port: int, tmp_path: Path) -> None:
    discharging = write_config(tmp_path / "a.toml", sim_port, discharge=True, period_min=10)
    idle = write_config(tmp_path / "b.toml", sim_port, discharge=False, period_min=10)
    gateway = start_gateway(discharging)
    try:
        wait_for(sim_port, "discharge", 20)
    finally:
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(timeout=10)
    assert asyncio.run(forcible_command(sim_port)) == "discharge"  # the period (20 s) runs on
    restarted = start_gateway(idle)
    try:
        # At once: well inside the 20 s the device-side period would still have run.
        assert wait_for(sim_port, "stop", 10) < 8
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(timeout=15) == 0
