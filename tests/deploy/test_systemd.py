"""The systemd unit: systemd accepts it, and it runs the same `bessai run --config` as the
container, with the data directory systemd creates for it."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bessai.config import load_config
from tests.deploy.conftest import DEPLOY, ROOT
from tests.deploy.images import compose, dockerfile, final_stage, one, parse_bessai

UNIT = DEPLOY / "systemd" / "bessai.service"
BINARY = "/opt/bessai/bin/bessai"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    # The unit names the installed console script; verify checks it is executable, so point it
    # at this environment's.
    unit = tmp_path / "bessai.service"
    unit.write_text(UNIT.read_text().replace(BINARY, str(Path(sys.executable).parent / "bessai")))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == "", result.stderr


def test_unit_runs_what_the_container_runs() -> None:
    service = _unit()["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == BINARY
    container = compose(DEPLOY / "compose" / "site" / "compose.yaml")["services"]["gateway"]
    assert argv[1:] == container["command"] == one(final_stage(dockerfile()), "CMD").exec_form()
    assert parse_bessai(argv[1:]).info_name == "run"
    pre = shlex.split(service["ExecStartPre"])
    assert pre[0] == BINARY
    assert parse_bessai(pre[1:]).info_name == "check"
    assert pre[-1] == argv[argv.index("--config") + 1]


def test_data_directory_is_the_state_directory_whatever_the_config_says() -> None:
    service = _unit()["Service"]
    name, _, value = service["Environment"].partition("=")
    data_dir = f"/var/lib/{service['StateDirectory']}"
    assert (value, service["WorkingDirectory"]) == (data_dir, data_dir)
    config, overridden = load_config(ROOT / "examples" / "site.toml", environ={name: value})
    assert str(config.gateway.data_dir) == data_dir
    assert overridden == ["gateway.data_dir"]


def test_unit_runs_unprivileged_and_stops_in_order() -> None:
    service = _unit()["Service"]
    assert service["User"] == "bessai"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    # The gateway stops dispatch on SIGTERM; give it longer than one 5 s cycle and a write.
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= 15
