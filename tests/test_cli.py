"""The CLI is what users touch first: every subcommand must answer --help."""

from __future__ import annotations

import subprocess
import sys

import typer.main
from typer.testing import CliRunner

from bessai import __version__
from bessai.cli import app

runner = CliRunner()


def _all_command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(cmd: object, prefix: list[str]) -> None:
        commands = getattr(cmd, "commands", None)
        if commands:
            for name, sub in commands.items():
                paths.append([*prefix, name])
                walk(sub, [*prefix, name])

    walk(root, [])
    return paths


def test_version_prints_installed_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == __version__


def test_every_subcommand_has_help() -> None:
    paths = _all_command_paths()
    assert ["version"] in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def test_console_script_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bessai.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "open-bess-edge" in out.stdout


def test_console_script_reports_a_bad_input_once_and_exits_2() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bessai.cli", "backtest", "--prices", "/nonexistent/prices.csv",
         "--forecaster", "week-mean"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.count("no such price file") == 1, out.stderr
    assert out.stderr.startswith("error: /nonexistent/prices.csv: no such price file")


def test_every_data_file_of_the_package_is_declared_for_the_wheel() -> None:
    """A file an installed package lacks fails only off an editable install (the demo's price
    series once did); every non-Python file under src/bessai must match package-data."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    package = root / "src" / "bessai"
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["bessai"]
    declared = {p for pattern in patterns for p in package.glob(pattern)}
    data = {
        p
        for p in package.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    }
    assert data, "no data files found: the test looks in the wrong place"
    assert sorted(map(str, data - declared)) == []
