"""Configuration: errors name the key, env overrides apply, `bessai config check` shows it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bessai.config import load_config
from bessai.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "site.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def test_the_shipped_example_is_valid() -> None:
    config, _ = load_config(EXAMPLE, environ={})
    assert config.sites[0].device.port == 502
    assert config.sites[0].safety.temp_max_c == 45


def test_embedded_default() -> None:
    config, overridden = load_config(None, environ={})
    assert config.sites[0].simulator.enabled
    assert overridden == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[sites]]\nid = 'a'\ncycle_s = 0\n", "sites.0.cycle_s: Input should be greater than"),
        ("[[sites]]\nid = 'a'\ncolour = 'red'\n", "sites.0.colour: unknown key"),
        ("[[sites]]\nid = 'a'\n[sites.safety]\nsoc_min_pct = 99\n", "must be below soc_max_pct"),
        ("[[sites]]\nid = 'A b'\n", "sites.0.id: String should match pattern"),
        ("[[sites]]\nid = 'a'\n[[sites]]\nid = 'a'\n", "duplicate site id(s): a"),
        ("sites = []\n", "sites: List should have at least 1 item"),
        ("[[sites]]\nid = 'a'\ntimezone = 'Mars/Olympus'\n", "unknown timezone 'Mars/Olympus'"),
        ("[[sites]]\nid = 'a'\n[sites.dispatch]\nrefresh_s = 600\n", "expires between refreshes"),
        ("[[sites]\nid = 'a'\n", "is not valid TOML"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert expected in str(info.value)
    assert str(path) in str(info.value)


def test_environment_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "[[sites]]\nid = 'a'\n[[sites.devices]]\nport = 502\n")
    config, overridden = load_config(
        path,
        environ={
            "BESSAI_GATEWAY__HTTP_PORT": "8100",
            "BESSAI_SITES__0__SAFETY__TEMP_MAX_C": "40.5",
            "BESSAI_SITES__0__DEVICES__0__HOST": "10.0.0.7",
            "BESSAI_API_KEY": "not a config key",
        },
    )
    assert config.gateway.http_port == 8100
    assert config.sites[0].safety.temp_max_c == 40.5
    assert config.sites[0].device.host == "10.0.0.7"
    assert overridden == [
        "gateway.http_port",
        "sites.0.devices.0.host",
        "sites.0.safety.temp_max_c",
    ]
    with pytest.raises(ConfigError, match="BESSAI_SITES__0__SAFETY__TEMP_MAX_C"):
        load_config(path, environ={"BESSAI_SITES__0__SAFETY__TEMP_MAX_C": "hot"})
    with pytest.raises(ConfigError, match="BESSAI_SITES__3__CYCLE_S"):
        load_config(path, environ={"BESSAI_SITES__3__CYCLE_S": "1"})
    bare = write(tmp_path, "[[sites]]\nid = 'a'\n")
    with pytest.raises(ConfigError, match=r"sites\.0\.devices is not in the configuration file"):
        load_config(bare, environ={"BESSAI_SITES__0__DEVICES__0__HOST": "x"})


def test_relative_data_dir_follows_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[gateway]\ndata_dir = 'state'\n[[sites]]\nid = 'a'\n")
    config, _ = load_config(path, environ={})
    assert config.gateway.data_dir == tmp_path / "state"


def test_config_check_cli(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "bessai.cli", "config", "check", str(EXAMPLE)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "[[sites]]" in ok.stdout
    assert "ok, 1 site(s)" in ok.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "bessai.cli", "config", "check",
         str(write(tmp_path, "[[sites]]\nid = 'a'\ncycle_s = -1\n"))],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "sites.0.cycle_s" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_config_check_loads_the_planners_model(tmp_path: Path, damage: str) -> None:
    model = tmp_path / "model"
    if damage == "corrupt":
        model.mkdir()
        (model / "card.json").write_text("{ not json")
    config = write(
        tmp_path,
        f"[[sites]]\nid = 'a'\n[sites.optimizer]\nenabled = true\nforecaster = 'model:{model}'\n",
    )
    bad = subprocess.run(
        [sys.executable, "-m", "bessai.cli", "config", "check", str(config)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2, bad.stderr
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1, bad.stderr
    assert lines[0].startswith("error: site a: optimizer.forecaster:")
    assert "Traceback" not in bad.stderr


def test_a_sped_up_simulator_gets_a_forcible_period_that_outlives_the_refresh() -> None:
    from bessai.config import DispatchConfig
    from bessai.runtime.simulators import sped_up_dispatch

    default = DispatchConfig()  # 2 min, refreshed every 60 s
    assert sped_up_dispatch(default, 1.0) == default
    assert sped_up_dispatch(default, 0.5) == default
    for speed in (2.0, 10.0, 30.0, 120.0, 1000.0):
        d = sped_up_dispatch(default, speed)
        period_wall_s = d.forcible_period_min * 60 / speed
        assert d.forcible_period_min <= 60  # the register's limit
        assert d.refresh_s <= period_wall_s / 2, speed
        assert d.forcible_period_min >= default.forcible_period_min
    at_120 = sped_up_dispatch(default, 120.0)
    assert (at_120.forcible_period_min, at_120.refresh_s) == (60, 15.0)
