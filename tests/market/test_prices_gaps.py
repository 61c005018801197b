"""Repairs do not invent days: gaps up to the limit are interpolated and reported, longer ones
stay without prices and the days they touch are left out of back-tests, evaluations and
training; a stray time is refused, not taken for a finer step."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bessai.analysis.backtest import backtest
from bessai.cli import app
from bessai.errors import DataError
from bessai.market.days import scorable_days
from bessai.market.prices import load_prices, market_days
from bessai.market.training import TrainSpec, training_set
from bessai.optimize import StorageSpec

VALDIVIA = "cen_cmg_valdivia220_2023.tsv"
CRUCERO = "cen_cmg_crucero220_2019-2023.csv"


def _hourly(path: Path, hours: int, missing: range = range(0)) -> Path:
    start = datetime(2024, 3, 1, tzinfo=UTC)
    rows = [
        f"{(start + timedelta(hours=h)).isoformat()},{50 + 10 * np.sin(h / 3):.3f}"
        for h in range(hours)
        if h not in missing
    ]
    path.write_text("timestamp,price\n" + "\n".join(rows) + "\n")
    return path


def test_a_gap_up_to_the_limit_is_filled_and_a_longer_one_left_out(tmp_path: Path) -> None:
    at_limit = load_prices(_hourly(tmp_path / "a.csv", 48, range(10, 13)))  # 3 h missing
    assert len(at_limit.report.filled) == 3
    assert not at_limit.has_gaps
    over = load_prices(_hourly(tmp_path / "b.csv", 48, range(10, 14)))  # 4 h missing
    assert over.report.filled == ()
    assert over.report.left_out == (
        (datetime(2024, 3, 1, 10, tzinfo=UTC), datetime(2024, 3, 1, 14, tzinfo=UTC)),
    )
    assert int(over.prices.isna().sum()) == 4
    [issue] = over.report.of_kind("gap-left-out")
    assert "(4 h): longer than the 3 h the loader fills; left out" in issue.message
    # The limit is the user's: 4 h fill when allowed, and 0 fills nothing.
    assert len(load_prices(tmp_path / "b.csv", max_gap_h=4).report.filled) == 4
    assert load_prices(tmp_path / "a.csv", max_gap_h=0).has_gaps
    # The day the gap touches is not a market day any more.
    assert [d for d, _, _ in market_days(over)] == [date(2024, 3, 2)]


def test_one_off_grid_time_is_refused_not_taken_for_a_finer_step(tmp_path: Path) -> None:
    f = _hourly(tmp_path / "p.csv", 24)
    lines = f.read_text().splitlines()
    lines.insert(6, "2024-03-01T04:30:00+00:00,55.0")  # line 7 of the file
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        load_prices(f)
    assert str(err.value).startswith(
        f"{f}:7: time 2024-03-01T04:30:00+00:00 is not on the 1:00:00 grid of the other rows"
    )


@pytest.fixture(scope="module")
def valdivia_holes(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Valdivia 2023 without 2023-05-10 (a whole day) and without 2023-06-01 .. 2023-08-31
    (92 days)."""
    lines = (data_dir / VALDIVIA).read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    fecha = header.index("fecha")

    def dropped(line: str) -> bool:
        day = line.split("\t")[fecha]
        return day == "2023-05-10" or "2023-06-01" <= day <= "2023-08-31"

    out = tmp_path_factory.mktemp("holes") / "valdivia_holes.tsv"
    out.write_text("\n".join([lines[0], *[x for x in lines[1:] if not dropped(x)]]) + "\n")
    return out


def test_a_missing_day_and_the_week_after_it_are_left_out_of_the_backtest(
    valdivia_holes: Path,
) -> None:
    series = load_prices(valdivia_holes)
    r = backtest(
        series,
        "week-mean",
        StorageSpec(),
        first_day=date(2023, 5, 1),
        last_day=date(2023, 5, 31),
    )
    booked = [d.day for d in r.days]
    assert date(2023, 5, 10) not in booked
    # The gap day itself, then the eight days whose forecast history reads it.
    [gap, after] = [x.to_json() for x in r.excluded]
    assert gap == {
        "from": "2023-05-10",
        "to": "2023-05-10",
        "days": 1,
        "reason": "no price for some steps (a gap longer than --max-gap-h)",
    }
    assert (after["from"], after["to"], after["days"]) == ("2023-05-11", "2023-05-18", 8)
    assert len(booked) == 31 - 9
    assert np.isfinite(r.capture_daily)
    assert np.isfinite(r.whole_period_net)


def test_a_92_day_hole_is_not_scored(valdivia_holes: Path, tmp_path: Path) -> None:
    series = load_prices(valdivia_holes)
    _, excluded = scorable_days(series)
    assert excluded[-2].first == date(2023, 6, 1)
    assert excluded[-2].days == 92
    model = tmp_path / "ridge"
    r = CliRunner().invoke(
        app,
        ["forecast", "train", "--prices", str(valdivia_holes), "--kind", "ridge",
         "--folds", "2", "--out", str(model)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    card = json.loads((model / "card.json").read_text())
    assert card["data"]["steps_without_price"] == 93 * 24
    assert card["data"]["issue_times_left_out"] > 0
    # Inside the hole: no table of nan and 0.000, one line naming the days left out.
    out = subprocess.run(
        [sys.executable, "-m", "bessai.cli", "forecast", "eval", "--prices",
         str(valdivia_holes), "--model", str(model), "--from", "2023-06-01", "--to",
         "2023-08-31"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stdout == ""
    assert "Traceback" not in out.stderr
    [error] = [x for x in out.stderr.splitlines() if x.startswith("error:")]
    assert error.startswith(
        "error: back-test: no complete market day between 2023-06-01 and 2023-08-31; left "
        "out: 2023-06-01 .. 2023-08-31 (92 days): no price for some steps"
    )
    # Around it: scores over the days with prices, the days left out named in the header.
    r = CliRunner().invoke(
        app,
        ["forecast", "eval", "--prices", str(valdivia_holes), "--model", str(model),
         "--from", "2023-05-20", "--to", "2023-09-30", "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    # The 192 h of history before 2023-09-09 reach into August 31: 2023-09-03 had 23 hours.
    assert [(x["from"], x["to"]) for x in body["excluded_days"]] == [
        ("2023-06-01", "2023-08-31"),
        ("2023-09-01", "2023-09-09"),
    ]
    for row in body["results"]:
        assert row["days"] == 12 + 21
        assert all(np.isfinite(v) for v in row.values() if isinstance(v, float))
        assert 0 < row["coverage_10_90"] < 1


def test_training_rows_never_read_a_gap(valdivia_holes: Path) -> None:
    series = load_prices(valdivia_holes)
    spec = TrainSpec(model="ridge", issue_every_h=24, folds=2)
    data = training_set(series.values, series.index, series.timezone, spec)
    assert data.left_out > 92
    assert np.isfinite(data.x).all()
    assert np.isfinite(data.y).all()


def test_the_card_counts_repairs_in_the_training_window(data_dir: Path, tmp_path: Path) -> None:
    # Crucero's file has five interpolated hours (one a year); 2019 holds one of them.
    r = CliRunner().invoke(
        app,
        ["forecast", "train", "--prices", str(data_dir / CRUCERO), "--kind", "week-mean",
         "--from", "2019-01-01", "--to", "2019-12-31", "--out", str(tmp_path / "m")],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "m" / "card.json").read_text())["data"]
    assert data["repaired_steps"] == 1
    assert data["steps_without_price"] == 0


def test_optimize_refuses_a_period_without_prices(valdivia_holes: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bessai.cli", "optimize", "--prices", str(valdivia_holes),
         "--from", "2023-05-09", "--to", "2023-05-11"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "the period has no prices on 2023-05-10 (1 day)" in out.stderr


def test_naive_forecasts_refuse_history_with_a_gap(valdivia_holes: Path) -> None:
    from bessai.market.baselines import persistence, week_mean

    series = load_prices(valdivia_holes)
    days = {d: (s, e) for d, s, e in market_days(series)}
    s, e = days[date(2023, 5, 11)]
    history, target = series.prices.iloc[:s], series.index[s:e]
    with pytest.raises(DataError, match="the last 1 day"):
        persistence(history, target, series.timezone)
    with pytest.raises(DataError, match="no price for 24 steps"):
        week_mean(history, target, series.timezone)
    s, e = days[date(2023, 5, 19)]  # a week and a day after the gap: clear of it
    assert np.isfinite(
        week_mean(series.prices.iloc[:s], series.index[s:e], "America/Santiago")
    ).all()
