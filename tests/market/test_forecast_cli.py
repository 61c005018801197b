"""`bessai forecast` as a user meets its mistakes: one line, exit code 2, no traceback, and a
line that says what works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bessai.cli import app
from bessai.market.prices import load_prices

VALDIVIA = "cen_cmg_valdivia220_2023.tsv"


def _bessai(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bessai.cli", *args], capture_output=True, text=True, timeout=300
    )


def _one_error(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out.stderr
    return errors[0]


@pytest.fixture(scope="module")
def ridge(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "ridge"
    r = CliRunner().invoke(
        app,
        ["forecast", "train", "--prices", str(data_dir / VALDIVIA), "--kind", "ridge",
         "--to", "2023-03-31", "--folds", "2", "--out", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    return out


def test_model_is_a_directory_and_the_kind_is_kind(data_dir: Path, tmp_path: Path) -> None:
    error = _one_error(
        _bessai("forecast", "train", "--prices", str(data_dir / VALDIVIA), "--model", "lgbm",
                "--out", str(tmp_path / "m"))
    )  # fmt: skip
    assert error == (
        "error: forecast train: --model is now the model directory of predict and eval; give "
        "the model kind as --kind lgbm (and the directory to write as --out)"
    )
    assert not (tmp_path / "m").exists()


def test_eval_from_the_files_first_day_names_the_day_that_works(
    ridge: Path, data_dir: Path
) -> None:
    error = _one_error(
        _bessai("forecast", "eval", "--prices", str(data_dir / VALDIVIA), "--model", str(ridge),
                "--from", "2023-01-01", "--to", "2023-01-20")
    )  # fmt: skip
    assert error == (
        "error: --from 2023-01-01: the forecasts read the 192 h before each day and the prices "
        "start 2023-01-01 00:00 (America/Santiago); the first day with that much history is "
        "2023-01-09: use --from 2023-01-09 or later"
    )
    # Without --from the evaluation starts there by itself.
    r = CliRunner().invoke(
        app,
        ["forecast", "eval", "--prices", str(data_dir / VALDIVIA), "--model", str(ridge),
         "--to", "2023-01-20", "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert '"from": "2023-01-09"' in r.stdout


def test_eval_refuses_prices_cut_in_another_time_zone(
    ridge: Path, data_dir: Path, tmp_path: Path
) -> None:
    series = load_prices(data_dir / VALDIVIA)
    rows = [
        f"{t.isoformat()},{float(p)!r}" for t, p in zip(series.index, series.values, strict=True)
    ]
    generic = tmp_path / "valdivia_generic.csv"
    generic.write_text("timestamp,price_usd_mwh\n" + "\n".join(rows) + "\n")
    window = ["--from", "2023-05-02", "--to", "2023-05-08"]
    error = _one_error(
        _bessai("forecast", "eval", "--prices", str(generic), "--model", str(ridge), *window)
    )
    assert error == (
        f"error: {ridge}: the model's market days are in America/Santiago, the prices' in UTC; "
        "give --tz America/Santiago for this generic file"
    )
    r = CliRunner().invoke(
        app,
        ["forecast", "eval", "--prices", str(generic), "--model", str(ridge), *window,
         "--tz", "America/Santiago", "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
