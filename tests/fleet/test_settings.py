"""The fleet configuration: docs/fleet.md's example loads, env overrides, paths, and one-line
errors naming the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bessai.errors import ConfigError
from bessai.fleet.settings import load_fleet_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "fleet.md"


def test_documented_example_loads(tmp_path: Path) -> None:
    block = re.search(r"```toml\n(.*?)```", DOC.read_text(), re.S)
    assert block is not None
    path = tmp_path / "fleet.toml"
    path.write_text(block.group(1))
    settings = load_fleet_settings(path, environ={})
    fleet = settings.fleet
    assert (fleet.http_port, fleet.stream, fleet.consumer) == (8090, "BESSAI", "bessai-fleet")
    assert fleet.stale_after_s == 60
    assert settings.keys_file == tmp_path / "var" / "api_keys.json"


def test_environment_overrides(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text('[fleet]\ndatabase_url = "postgresql://a@h/db"\nnats_tls_ca_file = "ca.pem"\n')
    env = {
        "BESSAI_FLEET_DATABASE_URL": "postgresql://u:pw@db/fleet",
        "BESSAI_FLEET__HTTP_PORT": "9001",
    }
    settings = load_fleet_settings(path, environ=env)
    assert settings.fleet.database_url.get_secret_value() == "postgresql://u:pw@db/fleet"
    assert settings.fleet.http_port == 9001
    assert settings.fleet.nats_tls_ca_file == tmp_path / "var" / "ca.pem"
    assert "pw" not in repr(settings.fleet)


def test_a_gateway_file_with_a_fleet_table(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text('[[sites]]\nid = "a"\n\n[fleet]\nstale_after_s = 5\n')
    assert load_fleet_settings(path, environ={}).fleet.stale_after_s == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[fleet]\nhttp_port = 70000\n", "fleet.http_port"),
        ("[fleet]\nconsumre = 'x'\n", "fleet.consumre: unknown key"),
        ("[fleet]\nconsumer = 'a.b'\n", "fleet.consumer"),
        ("[telemetry]\n", "belong to a gateway file"),
        ("[fleet\n", "not valid TOML"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_fleet_settings(path, environ={})


def test_serve_errors_are_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.fleet.harness import fleet_config_file

    config = fleet_config_file(tmp_path, "postgresql://nobody@127.0.0.1:1/none", 1, 0)
    run = subprocess.run(
        [sys.executable, "-m", "bessai.cli", "fleet", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2
    assert "cannot connect to the fleet database postgresql://nobody@127.0.0.1:1/none" in run.stderr
    assert "Traceback" not in run.stderr


def test_the_example_file_loads() -> None:
    example = DOC.parents[1] / "examples" / "fleet.toml"
    settings = load_fleet_settings(example, environ={})
    assert settings.fleet.http_port == 8090
