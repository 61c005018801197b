"""`bessai attack`: the kit hits the simulator, logs ground truth, and refuses non-loopback."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bessai.security.attack.rogue import AttackTargetError, check_loopback
from bessai.simulator.server import SimulatorServer

BASE = [sys.executable, "-m", "bessai.cli", "attack"]


async def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [*BASE, *args], capture_output=True, text=True, timeout=60
    )


async def test_inject_writes_the_device_and_logs_the_ground_truth(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    log = tmp_path / "truth.jsonl"
    out = await _run("inject", "forcible_discharge", "--port", str(sim.port), "--log", str(log))
    assert out.returncode == 0, out.stderr
    assert sim.device.get("forcible_command") == "discharge"
    (line,) = log.read_text().splitlines()
    record = json.loads(line)
    assert record["type"] == "command_injection"
    assert record["params"]["injection"] == "forcible_discharge"
    assert record["start"] <= record["end"]


def test_the_kit_refuses_a_target_off_loopback() -> None:
    with pytest.raises(AttackTargetError, match="not loopback"):
        check_loopback("192.168.1.10")
    check_loopback("127.0.0.1")
