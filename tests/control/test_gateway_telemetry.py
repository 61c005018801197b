"""The gateway emits one envelope per site per cycle through the durable outbox: commands and
alarm changes as their own kinds, and `seq` that continues across a SIGKILL with nothing that was
committed lost."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bessai.config import Config
from bessai.errors import BessaiError
from bessai.runtime.service import Runtime
from bessai.simulator.server import SimulatorServer
from bessai.telemetry.lake import query_lake
from tests.conftest import FAST_SETTINGS

from .conftest import site_config


def lake_config(tmp_path: Path, sites: list[dict[str, object]]) -> Config:
    return Config.model_validate(
        {
            "gateway": {"data_dir": str(tmp_path)},
            "sites": sites,
            "telemetry": {
                "outbox_path": str(tmp_path / "outbox.sqlite"),
                "sinks": [{"type": "lake", "path": str(tmp_path / "lake"), "flush_interval_s": 0}],
            },
        }
    )


async def test_cycles_commands_and_alarms_reach_the_lake(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    runtime = Runtime(lake_config(tmp_path, [site_config(sim.port).model_dump()]), FAST_SETTINGS)
    await runtime.start()
    gateway = runtime.gateway
    try:
        site = gateway.sites["t1"]
        site.override.set(-2000, datetime.now(UTC), 60, "test")
        await asyncio.sleep(1.0)
        sim.device.overrides["unit1_temp_c"] = 50.0
        await asyncio.sleep(1.0)
    finally:
        await runtime.stop()
    cycles = gateway.sites["t1"].counters.cycles
    lake = tmp_path / "lake"
    kinds = dict(
        query_lake(lake, "SELECT kind, count(*) FROM telemetry GROUP BY kind").rows  # type: ignore[arg-type]
    )
    assert kinds["telemetry"] == cycles
    assert kinds["command"] >= 2  # the discharge, then the stop when the battery ran hot
    assert kinds["alarm"] >= 1
    alarm = query_lake(lake, "SELECT raised FROM telemetry WHERE kind = 'alarm' ORDER BY seq").rows
    assert any("50.0 °C" in str(row[0]) for row in alarm)
    seqs = [r[0] for r in query_lake(lake, "SELECT seq FROM telemetry ORDER BY seq").rows]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def _write_config(tmp_path: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        f"""
[gateway]
data_dir = "{tmp_path}"
http_port = 0
status_display = false

[[sites]]
id = "k1"
cycle_s = 0.3

[[sites.devices]]
port = 0
wait_after_connect_s = 0.05
cooldown_s = 0.0

[sites.simulator]
enabled = true

[telemetry]
[[telemetry.sinks]]
type = "lake"
path = "lake"
flush_interval_s = 0
"""
    )
    return path


def _gateway(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bessai.cli", "run", "--config", str(config), "--no-status"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _lake_rows(lake: Path) -> list[tuple[object, ...]]:
    try:
        return query_lake(
            lake, "SELECT seq, boot_id FROM telemetry WHERE site_id = 'k1' ORDER BY seq"
        ).rows
    except BessaiError:  # the lake has no file yet, or one being written
        return []


def _wait_for_boots(lake: Path, boots: int, rows_after: int) -> None:
    """Until the lake holds `boots` boot ids and `rows_after` rows of the latest one: a fixed
    sleep let a loaded machine kill the gateway before it had delivered anything."""
    deadline = time.monotonic() + 90.0
    while time.monotonic() < deadline:
        rows = _lake_rows(lake)
        seen = {r[1] for r in rows}
        if len(seen) >= boots and sum(1 for r in rows if r[1] == rows[-1][1]) >= rows_after:
            return
        time.sleep(0.3)
    raise AssertionError(f"the lake did not reach {boots} boots with {rows_after} rows in 90 s")


def test_seq_continues_across_sigkill_and_nothing_committed_is_lost(tmp_path: Path) -> None:
    config = _write_config(tmp_path)
    lake = tmp_path / "lake"
    first = _gateway(config)
    try:
        _wait_for_boots(lake, boots=1, rows_after=5)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    second = _gateway(config)
    try:
        _wait_for_boots(lake, boots=2, rows_after=5)
    finally:
        second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=20) == 0
    rows = query_lake(
        tmp_path / "lake",
        "SELECT seq, boot_id FROM telemetry WHERE site_id = 'k1' ORDER BY seq",
    ).rows
    seqs = [r[0] for r in rows]
    boots = {r[1] for r in rows}
    assert len(boots) == 2  # both runs delivered
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap, no reuse
    assert len(seqs) >= 10
