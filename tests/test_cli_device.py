"""The device commands as a user runs them: `bessai sim` in its own process, then `bessai read`
and `bessai write` against it over loopback."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BESSAI = [sys.executable, "-m", "bessai.cli"]
QUICK = ["--wait-after-connect-s", "0.05", "--timeout-s", "2"]


def bessai(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [*BESSAI, *args], capture_output=True, text=True, timeout=60, check=check, env=env
    )


@pytest.fixture
def sim_process(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    proc = subprocess.Popen(
        [*BESSAI, "sim", "--port", "0", "--speed", "30", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"simulator on 127\.0\.0\.1:(\d+)", line)
    assert match, line
    try:
        yield int(match.group(1)), proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def read_json(port: int, *extra: str) -> dict[str, object]:
    out = bessai("read", "--port", str(port), "--json", *QUICK, *extra)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def values(doc: dict[str, object]) -> dict[str, object]:
    points = doc["points"]
    assert isinstance(points, list)
    return {f"{p['profile']}.{p['name']}": p["value"] for p in points}


def test_read_json_returns_every_point_decoded(sim_process: tuple[int, object]) -> None:
    port, _ = sim_process
    doc = read_json(port)
    points = doc["points"]
    assert isinstance(points, list)
    assert len(points) >= 120
    assert doc["requests"] <= 20  # type: ignore[operator]
    assert all(set(p) >= {"address", "name", "value", "unit"} for p in points)
    v = values(doc)
    assert v["huawei_sun2000.model_name"] == "SUN2000-10KTL-M1"
    assert v["huawei_sun2000.device_status"] == "On-grid"
    assert v["huawei_sun2000.state_1"] == ["grid_connected", "grid_connected_normally"]
    assert 0 <= v["huawei_luna2000.soc_pct"] <= 100  # type: ignore[operator]
    assert v["huawei_luna2000.forcible_command"] == "stop"
    assert v["huawei_dtsu666.meter_status"] == "normal"
    assert all(p["available"] for p in points)  # type: ignore[index]


def test_group_and_profile_filters(sim_process: tuple[int, object]) -> None:
    port, _ = sim_process
    doc = read_json(port, "--profile", "huawei_dtsu666", "--group", "fast")
    names = set(values(doc))
    assert "huawei_dtsu666.active_power_w" in names
    assert not any(n.startswith("huawei_luna2000") for n in names)
    assert "huawei_dtsu666.exported_energy_kwh" not in names  # slow group
    assert "huawei_dtsu666.meter_type" not in names  # static, and no fast point depends on it
    assert doc["requests"] == 1


def test_read_group_fast_reads_what_every_cycle_reads(sim_process: tuple[int, object]) -> None:
    # The README's figures: the fast group in the cycle's 3 requests, after 2 for the static
    # points it depends on (number of PV strings, second battery unit).
    port, _ = sim_process
    doc = read_json(port, "--group", "fast")
    points = doc["points"]
    assert isinstance(points, list)
    groups = {f"{p['profile']}.{p['name']}": p["group"] for p in points}
    static = sorted(name for name, group in groups.items() if group == "static")
    assert static == ["huawei_luna2000.unit2_product_model", "huawei_sun2000.pv_string_count"]
    assert all(group == "fast" for name, group in groups.items() if name not in static)
    assert len(points) - len(static) == 52
    assert doc["requests"] == 3 + 2
    assert all(p["available"] for p in points)
    table = bessai("read", "--port", str(port), "--group", "fast", *QUICK)
    assert "54 points, 0 unavailable, 5 requests" in table.stdout


def test_read_names_a_wrong_unit_id(sim_process: tuple[int, object]) -> None:
    port, _ = sim_process
    out = bessai("read", "--port", str(port), "--unit", "7", *QUICK, check=False)
    assert out.returncode != 0
    assert (
        out.stderr.strip()
        .splitlines()[-1]
        .endswith(
            f"no answer from unit 7 at 127.0.0.1:{port}: "
            "check the unit id (SDongle 1, inverter access point 0)"
        )
    )
    assert "Traceback" not in out.stderr


def test_forced_charge_written_from_the_cli(sim_process: tuple[int, object]) -> None:
    port, _ = sim_process
    before = values(read_json(port, "--profile", "huawei_luna2000"))
    for point, value in [
        ("forcible_charge_power_w", "3000"),
        ("forcible_period_min", "2"),
        ("forcible_mode", "0"),
        ("forcible_command", "charge"),
    ]:
        out = bessai("write", point, value, "--port", str(port), *QUICK)
        assert "read back" in out.stdout
    written = time.monotonic()
    during = values(read_json(port, "--profile", "huawei_luna2000"))
    # Each CLI read is a new process: on a loaded machine one can outlast the 4 s period, and
    # then the device has rightly stopped; the energy counter below judges the charge anyway.
    if time.monotonic() - written < 3.5:
        assert during["huawei_luna2000.forcible_command"] == "charge"
        assert during["huawei_luna2000.power_w"] == 3000
    time.sleep(max(0.0, written + 4.5 - time.monotonic()))  # two minutes of plant time at x30
    after = values(read_json(port, "--profile", "huawei_luna2000"))
    assert after["huawei_luna2000.forcible_command"] == "stop"
    assert after["huawei_luna2000.power_w"] != 3000
    # 3 kW for 2 min is 0.1 kWh; PV may add to it, losses and taper take a little.
    charged = after["huawei_luna2000.total_charge_kwh"] - before["huawei_luna2000.total_charge_kwh"]  # type: ignore[operator]
    assert charged >= 0.08


def test_write_refuses_with_a_clear_message(sim_process: tuple[int, object]) -> None:
    port, _ = sim_process
    out = bessai("write", "soc_pct", "80", "--port", str(port), *QUICK, check=False)
    assert out.returncode == 2
    assert "read-only" in out.stderr
    assert "Traceback" not in out.stderr
    out = bessai("write", "forcible_discharge_power_w", "99999", "--port", str(port), *QUICK,
                 check=False)  # fmt: skip
    assert out.returncode == 2
    assert "outside the limits" in out.stderr
    out = bessai("write", "no_such_point", "1", "--port", str(port), *QUICK, check=False)
    assert "no point named 'no_such_point'" in out.stderr


def test_read_unreachable_device_is_a_clear_error() -> None:
    out = bessai("read", "--port", "9", *QUICK, check=False)
    assert out.returncode == 2
    assert "cannot connect to 127.0.0.1:9" in out.stderr


def test_sim_rejects_a_bad_scenario(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("events:\n  - {at_s: 1, fault: busy}\n  - {at_s: 2, set: {no_point: 1}}\n")
    out = bessai("sim", "--port", "0", "--scenario", str(bad), check=False)
    assert out.returncode == 2
    assert "events.0" in out.stderr
    assert "needs 'duration_s'" in out.stderr
    bad.write_text("events:\n  - {at_s: 2, set: {no_point: 1}}\n")
    out = bessai("sim", "--port", "0", "--scenario", str(bad), check=False)
    assert "events.0.set.no_point" in out.stderr


def test_profile_commands() -> None:
    assert "huawei_sun2000" in bessai("profile", "list").stdout
    shown = bessai("profile", "show", "huawei_luna2000").stdout
    assert "47247" in shown
    assert "forcible_charge_power_w" in shown
