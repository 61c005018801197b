"""`bessai optimize` and `bessai backtest` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
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


def _bessai(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bessai.cli", *args], capture_output=True, text=True, timeout=300
    )


def _one_error(out: subprocess.CompletedProcess[str]) -> str:
    """The command failed as an input error: exit 2, one line, no traceback."""
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out.stderr
    return errors[0]


def test_a_soc_outside_0_100_is_an_input_error(tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    rows = [f"2024-01-01T{h:02d}:00:00Z,{p}" for h, p in enumerate([50, 10, 10, 90, 120, 40])]
    f.write_text("timestamp,price\n" + "\n".join(rows) + "\n")
    error = _one_error(_bessai("optimize", "--prices", str(f), "--soc-initial", "150"))
    assert error == "error: --soc-initial: 150 % is not a state of charge (0..100 %)"
    error = _one_error(_bessai("optimize", "--prices", str(f), "--soc-final", "-5"))
    assert error == "error: --soc-final: -5 % is not a state of charge (0..100 %)"


def test_flags_show_as_flags_in_help() -> None:
    for command in (["backtest"], ["optimize"], ["forecast", "eval"], ["forecast", "predict"]):
        result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0
        lines = [x for x in result.stdout.splitlines() if "--json" in x or "--conservative" in x]
        assert lines, command
        assert all("<bool>" not in x for x in lines), lines


def _generic_copy(data_dir: Path, tmp_path: Path) -> Path:
    """Crucero 2023 in the generic format: UTC timestamps, no time zone of its market."""
    from bessai.market.prices import load_prices

    series = load_prices(data_dir / "cen_cmg_crucero220_2019-2023.csv")
    series = series.between(datetime(2022, 12, 1, tzinfo=UTC), datetime(2023, 7, 2, tzinfo=UTC))
    rows = [
        f"{t.isoformat()},{float(p)!r}" for t, p in zip(series.index, series.values, strict=True)
    ]
    out = tmp_path / "crucero_generic.csv"
    out.write_text("timestamp,price_usd_mwh\n" + "\n".join(rows) + "\n")
    return out


def test_the_market_time_zone_of_a_generic_file(data_dir: Path, tmp_path: Path) -> None:
    generic = _generic_copy(data_dir, tmp_path)
    window = ["--forecaster", "week-mean", "--from", "2023-01-01", "--to", "2023-06-30", "--json"]
    cen = runner.invoke(
        app, ["backtest", "--prices", str(data_dir / "cen_cmg_crucero220_2019-2023.csv"), *window]
    )
    utc = runner.invoke(app, ["backtest", "--prices", str(generic), *window])
    local = runner.invoke(
        app, ["backtest", "--prices", str(generic), "--tz", "America/Santiago", *window]
    )
    for r in (cen, utc, local):
        assert r.exit_code == 0, r.output
    cen_doc, utc_doc, local_doc = (json.loads(r.stdout) for r in (cen, utc, local))
    # The same prices cut at Santiago's midnight give the CEN file's figures exactly.
    for key in ("days", "net_revenue", "perfect_daily_net", "capture_vs_daily_perfect"):
        assert local_doc[key] == cen_doc[key], key
    # Cut at UTC midnight (the default for a generic file) they are other days.
    assert utc_doc["capture_vs_daily_perfect"] != cen_doc["capture_vs_daily_perfect"]
    assert "days in UTC" in utc.stderr
    error = _one_error(
        _bessai("backtest", "--prices", str(generic), "--tz", "Mars/Olympus", *window)
    )
    assert error.startswith("error: --tz: time zone 'Mars/Olympus' is unknown")
    error = _one_error(
        _bessai(
            "backtest",
            "--prices",
            str(data_dir / "cen_cmg_crucero220_2019-2023.csv"),
            "--tz",
            "UTC",
            *window,
        )
    )
    assert "a cen-csv file's market days are in America/Santiago" in error
