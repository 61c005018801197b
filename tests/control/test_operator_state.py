"""Operator state survives a restart (mode, override with its expiry, the settings held at the
device), a damaged state file starts every site safe, and stopping takes bounded time even with
a device that does not answer."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w

from bessai.api.app import create_app
from bessai.api.keys import KeyStore, Role
from bessai.config import Config
from bessai.control.safety import SafetyState
from bessai.control.site import SiteMode
from bessai.control.state import SavedOverride, SiteMemory, StateStore
from bessai.runtime.service import Runtime
from bessai.simulator.server import SimulatorServer
from tests.conftest import FAST_SETTINGS

from .conftest import site_config


def _config(tmp_path: Path, port: int, **site: Any) -> Config:
    return Config.model_validate(
        {
            "gateway": {"data_dir": str(tmp_path / "data")},
            "sites": [site_config(port, **site).model_dump()],
        }
    )


async def _post(runtime: Runtime, path: str, body: dict[str, Any], key: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(runtime.monitor), client=("127.0.0.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        return await client.post(path, json=body, headers={"X-API-Key": key})


async def _wait_cycles(runtime: Runtime, n: int) -> None:
    site = runtime.gateway.sites["t1"]
    start = site.counters.cycles
    deadline = time.monotonic() + 10
    while site.counters.cycles < start + n:
        assert time.monotonic() < deadline, "the site stopped cycling"
        await asyncio.sleep(0.05)


async def test_safe_mode_survives_a_restart(sim: SimulatorServer, tmp_path: Path) -> None:
    # A rule that discharges at full power all day: what a restart in "auto" would do at once.
    rules = {"time_of_use": [{"start": "00:00", "end": "24:00", "setpoint_w": -5000}]}
    config = _config(tmp_path, sim.port, controllers=rules)
    key = KeyStore(config.keys_file).add("ops", Role.CONTROL)
    first = Runtime(config, FAST_SETTINGS)
    await first.start()
    try:
        await _wait_cycles(first, 3)
        assert sim.device.get("forcible_command") == "discharge"
        r = await _post(first, "/api/v1/sites/t1/mode", {"mode": "safe"}, key)
        assert r.status_code == 200
        await _wait_cycles(first, 3)
    finally:
        await first.stop()

    second = Runtime(config, FAST_SETTINGS)
    await second.start()
    try:
        site = second.gateway.sites["t1"]
        assert site.mode is SiteMode.SAFE  # before the first cycle
        await _wait_cycles(second, 5)
        assert site.last is not None
        assert site.last.safety_state is SafetyState.SAFE
        assert sim.device.get("forcible_command") == "stop"
        assert abs(sim.device.plant.state.battery_power_w) < 50  # held still at the device
    finally:
        await second.stop()


async def test_an_override_survives_a_restart_with_its_expiry(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    config = _config(tmp_path, sim.port)
    key = KeyStore(config.keys_file).add("ops", Role.CONTROL)
    first = Runtime(config, FAST_SETTINGS)
    await first.start()
    try:
        await _wait_cycles(first, 2)
        r = await _post(
            first,
            "/api/v1/sites/t1/override",
            {"setpoint_w": -1500, "duration_s": 600, "reason": "peak shaving"},
            key,
        )
        assert r.status_code == 200, r.text
        until = datetime.fromisoformat(r.json()["until_utc"])
    finally:
        await first.stop()
    second = Runtime(config, FAST_SETTINGS)
    await second.start()
    try:
        site = second.gateway.sites["t1"]
        assert site.override.setpoint_w == -1500
        assert site.override.until == until
        await _wait_cycles(second, 3)
        assert site.last is not None
        assert site.last.proposal.controller == "manual"
        assert "peak shaving" in site.last.proposal.reason
    finally:
        await second.stop()


def test_state_store_round_trip_and_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "site_state.json"
    store = StateStore(path)
    until = datetime.now(UTC) + timedelta(minutes=5)
    memory = SiteMemory("manual", SavedOverride(2000.0, until, "test"), {"x": 5000.0})
    store.save("a", memory)
    assert StateStore(path).get("a") == memory
    assert StateStore(path).damaged is None

    path.write_text('{"version": 1, "sites": {"a": ')  # cut off mid-write by hand
    damaged = StateStore(path)
    assert damaged.damaged is not None
    assert "damaged" in damaged.damaged
    kept = list(tmp_path.glob("site_state.json.corrupt-*"))
    assert len(kept) == 1  # the damaged file is kept for a person to look at
    assert kept[0].read_text().startswith('{"version": 1')


async def test_a_damaged_state_file_starts_the_site_safe(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    config = _config(tmp_path, sim.port)
    config.gateway.data_dir.mkdir(parents=True)
    (config.gateway.data_dir / "site_state.json").write_bytes(b"\x00garbage")
    runtime = Runtime(config, FAST_SETTINGS)
    await runtime.start()
    try:
        site = runtime.gateway.sites["t1"]
        assert site.mode is SiteMode.SAFE
        assert "operator state lost" in (site.failsafe_reason or "")
    finally:
        await runtime.stop()


async def test_stop_is_bounded_with_a_silent_device(sim: SimulatorServer, tmp_path: Path) -> None:
    config = _config(tmp_path, sim.port)
    # Field settings: a 5 s timeout and three retries per request, as on a real site.
    runtime = Runtime(config)
    await runtime.start()
    await _wait_cycles(runtime, 2)
    sim.faults.silence_until = float("inf")
    await asyncio.sleep(1.0)  # a cycle is now stuck waiting for an answer
    started = time.monotonic()
    await runtime.stop()
    assert time.monotonic() - started < 10.0


async def _start_cli(tmp_path: Path, port: int) -> tuple[asyncio.subprocess.Process, Path]:
    config = {
        "gateway": {"data_dir": str(tmp_path / "cli"), "http_port": 0, "status_display": False},
        "sites": [{"id": "s", "devices": [{"host": "127.0.0.1", "port": port, "unit_id": 7}]}],
    }
    path = tmp_path / "gateway.toml"
    path.write_text(tomli_w.dumps(config))
    log = tmp_path / "gateway.log"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bessai.cli", "--log-level", "info", "run", "--config", str(path),
        stdout=log.open("wb"), stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while b"gateway running" not in log.read_bytes():
        assert proc.returncode is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.0)  # a cycle is now waiting on the unit that never answers
    return proc, log


@pytest.mark.parametrize("interrupts", [1, 2])
async def test_ctrl_c_stops_the_cli_in_bounded_time(
    sim: SimulatorServer, tmp_path: Path, interrupts: int
) -> None:
    proc, log = await _start_cli(tmp_path, sim.port)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    if interrupts == 2:
        await asyncio.sleep(0.3)
        proc.send_signal(signal.SIGINT)
    await asyncio.wait_for(proc.wait(), timeout=15)
    took_s = time.monotonic() - started
    text = log.read_text()
    assert "Traceback" not in text, text
    if interrupts == 1:
        assert took_s < 10.0, text
        assert proc.returncode == 0
    else:
        assert took_s < 2.0, text  # the second Ctrl-C exits at once
        assert proc.returncode == 130
        assert "exiting now" in text
