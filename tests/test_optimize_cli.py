"""`bessai optimize` and `bessai backtest` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from bessai.cli import app

runner = CliRunner()


def test_optimize_json_schema(tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    rows = [f"2024-01-01T{h:02d}:00:00Z,{p}" for h, p in enumerate([50, 10, 10, 90, 120, 40])]
    f.write_text("timestamp,price\n" + "\n".join(rows) + "\n")
    result = runner.invoke(
        app, ["optimize", "--prices", str(f), "--capacity-kwh", "1000", "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "optimal"
    assert doc["revenue"] > 0
    assert len(doc["schedule"]) == 6
    first = doc["schedule"][0]
    assert set(first) == {"timestamp", "charge_kw", "discharge_kw", "soc_pct", "reason"}
    assert first["timestamp"] == "2024-01-01T00:00:00Z"
    assert doc["schedule"][1]["reason"].startswith("charge: cheapest 1 of 6")


def test_backtest_json_and_plot(data_dir: Path, tmp_path: Path) -> None:
    png = tmp_path / "bt.png"
    result = runner.invoke(
        app,
        [
            "backtest",
            "--prices",
            str(data_dir / "cen_cmg_crucero220_2019-2023.csv"),
            "--forecaster",
            "rule",
            "--from",
            "2023-06-01",
            "--to",
            "2023-06-10",
            "--json",
            "--plot",
            str(png),
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["days"] == 10
    assert 0 < doc["capture_vs_daily_perfect"] <= 1
    assert png.stat().st_size > 10_000
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_bad_price_file_is_a_one_line_error(tmp_path: Path) -> None:
    f = tmp_path / "bad.csv"
    f.write_text("timestamp,price\n2024-01-01T00:00:00Z,1\n2024-01-01T01:00:00Z,x\n")
    out = subprocess.run(
        [sys.executable, "-m", "bessai.cli", "optimize", "--prices", str(f)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert f"{f}:3:2: 'x' is not a number" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_file_name_with_brackets_is_reported_as_it_is(tmp_path: Path) -> None:
    f = tmp_path / "prices[old].csv"
    rows = [f"2024-01-01T{h:02d}:00:00Z,{p}" for h, p in enumerate([50, 10, 10, 90, 120, 40])]
    f.write_text("timestamp,price\n" + "\n".join(rows) + "\n")
    result = runner.invoke(app, ["optimize", "--prices", str(f), "--json"])
    assert result.exit_code == 0, result.output
    assert "prices[old].csv: generic" in result.stderr
