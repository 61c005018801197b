"""Exogenous forecaster inputs from fetched CEN datasets, end to end: the availability rule
(a row never reads a value published after its issue time), `bessai forecast train/predict/eval
--exog`, the model card, and every mistake a user can make with them.

The dataset files are written here in the form `bessai market fetch --dataset` gives them
(tests/market/test_fetch_datasets.py checks that form against the fetcher). Their values are
made from the real Valdivia prices, so a model has something to read; no figure here is an
accuracy claim.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bessai.cli import app
from bessai.errors import BessaiError, DataError
from bessai.market.datasets import DATASETS, ExogSource, exog_frame, load_dataset_csv, load_exog
from bessai.market.features import BASE_FEATURES, ExogInput, build_features, exog_positions
from bessai.market.predictor import OnnxModel
from bessai.market.prices import PriceSeries, load_prices
from tests.market.exog_files import BUS, OTHER_BUS, programmed_file

TZ = "America/Santiago"
VALDIVIA = "cen_cmg_valdivia220_2023.tsv"


@pytest.fixture(scope="module")
def valdivia(data_dir: Path) -> PriceSeries:
    return load_prices(data_dir / VALDIVIA)


@pytest.fixture(scope="module")
def programmed(valdivia: PriceSeries, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file a user fetches with --dataset cmg-programmed (Jan to mid-April 2023)."""
    return programmed_file(valdivia, tmp_path_factory.mktemp("cen"))


# --- the availability rule ------------------------------------------------------------------


@pytest.mark.parametrize("known_days", [0, 1, 2])
@pytest.mark.parametrize("issue_local_hour", [0, 6, 13, 23])
def test_a_row_never_reads_a_value_published_after_its_issue(
    valdivia: PriceSeries, known_days: int, issue_local_hour: int
) -> None:
    index = valdivia.index
    local = index.tz_convert(TZ)
    issue = int(np.flatnonzero((local.month == 3) & (local.day == 10)
                               & (local.hour == issue_local_hour))[0])  # fmt: skip
    rng = np.random.default_rng(issue)
    exog = pd.DataFrame({"x": rng.normal(100, 10, len(index))}, index=index)
    rule = {"x": known_days}
    x, target = build_features(valdivia.values, index, np.array([issue]), 24, TZ, exog=exog,
                               known_days=rule)  # fmt: skip
    # Every value of a local day published after the issue time becomes NaN (read: an
    # error) or a wild number (read: a changed feature).
    day = np.asarray(local.tz_localize(None).values.astype("datetime64[D]").astype(np.int64))
    unpublished = day + known_days > day[issue]
    for poison in (np.nan, 1e9):
        bad = exog.copy()
        bad.loc[unpublished, "x"] = poison
        x2, _ = build_features(valdivia.values, index, np.array([issue]), 24, TZ, exog=bad,
                               known_days=rule)  # fmt: skip
        np.testing.assert_array_equal(x, x2)
    # And it reads the latest published day: the target itself if published, else whole days
    # back, the same step of the day.
    read = x[:, -1]
    pos = exog_positions(index, TZ, np.full(24, issue), target, known_days)
    np.testing.assert_array_equal(read, exog["x"].to_numpy(np.float32)[pos])
    back_days = (target - pos) // 24
    assert not unpublished[pos].any()
    assert (back_days <= known_days + 1).all()
    if known_days == 0 and issue_local_hour == 0:
        assert (pos == target).all()  # the day-ahead issue reads the programmed CMg itself
    if known_days == 1 and issue_local_hour == 0:
        assert (back_days == 1).all()  # a realised series: yesterday's same hour


def test_an_exog_gap_names_the_input_and_the_hour(valdivia: PriceSeries) -> None:
    index = valdivia.index
    exog = pd.DataFrame({"cmg_prog": np.ones(len(index))}, index=index)
    exog.loc["2023-03-10 05:00":"2023-03-10 09:00", "cmg_prog"] = np.nan  # type: ignore[misc]
    local = index.tz_convert(TZ)
    issue = int(np.flatnonzero((local.month == 3) & (local.day == 10) & (local.hour == 0))[0])
    with pytest.raises(DataError, match="'cmg_prog' has no value for 2023-03-10 05:00 UTC"):
        build_features(valdivia.values, index, np.array([issue]), 24, TZ, exog=exog)


def test_a_value_covers_its_own_hour_or_day_and_never_the_next() -> None:
    hourly = pd.date_range("2023-03-01 03:00", periods=3, freq="h", tz="UTC")
    daily = pd.date_range("2023-03-01 03:00", periods=2, freq="D", tz="UTC")
    wide = pd.concat(
        [pd.Series([1.0, 2.0, 3.0], index=hourly, name="h"),
         pd.Series([10.0, 20.0], index=daily, name="d")], axis=1
    )  # fmt: skip
    index = pd.date_range("2023-03-01 02:00", periods=60, freq="15min", tz="UTC")
    ex = exog_frame(wide, index, {"h": "h", "d": "d"})
    h = ex["h"].to_numpy()
    assert np.isnan(h[:4]).all()  # before the first value
    assert list(h[4:16]) == [1.0] * 4 + [2.0] * 4 + [3.0] * 4
    assert np.isnan(h[16:]).all()  # not held past its hour: the file ends there
    assert (ex["d"].to_numpy()[4:] == 10.0).all()  # a daily value covers its day


def test_every_dataset_states_when_it_is_published() -> None:
    assert DATASETS["cmg-programmed"].known_days == 0  # published the day before
    realised = ("generation", "generation-plant", "renewables", "demand", "emissions")
    assert all(DATASETS[n].known_days >= 1 for n in realised)


# --- files and keys -------------------------------------------------------------------------


def test_option_form_files_and_keys(programmed: Path, valdivia: PriceSeries) -> None:
    src = ExogSource.parse(f"cmg_prog={programmed}:{BUS.lower()}")
    assert (src.name, src.file, src.key) == ("cmg_prog", programmed, BUS.lower())
    assert ExogSource.parse(f"cmg_prog={programmed}").key is None
    inputs, frame = load_exog([src], valdivia.index)
    assert inputs == (ExogInput("cmg_prog", 0, "cmg-programmed", BUS),)  # key matched by case
    assert list(frame.columns) == ["cmg_prog"]
    with pytest.raises(BessaiError, match="expected NAME=FILE"):
        ExogSource.parse("cmg_prog")
    with pytest.raises(DataError, match=r"--exog cmg_prog: .*nope.csv: no such file"):
        load_exog([ExogSource.parse("cmg_prog=/nope.csv")], valdivia.index)
    with pytest.raises(DataError, match=r"has no key 'ATACAMA'.*'VALDIVIA_______220'"):
        load_exog([ExogSource.parse(f"cmg_prog={programmed}:ATACAMA")], valdivia.index)
    with pytest.raises(DataError, match="holds 2 keys; name one as NAME=FILE:KEY"):
        load_exog([ExogSource.parse(f"cmg_prog={programmed}")], valdivia.index)
    renamed = programmed.with_name("my_prices.csv")
    renamed.write_bytes(programmed.read_bytes())
    with pytest.raises(DataError, match="cannot tell the dataset from the file name"):
        load_exog([ExogSource.parse(f"cmg_prog={renamed}:{BUS}")], valdivia.index)
    assert len(load_dataset_csv(programmed).columns) == 2


# --- the commands ---------------------------------------------------------------------------


def _train(data_dir: Path, out: Path, *extra: str) -> CliRunner:
    return CliRunner().invoke(
        app,
        ["forecast", "train", "--prices", str(data_dir / VALDIVIA), "--kind", "lgbm",
         "--n-estimators", "20", "--folds", "2", "--issue-every-h", "12",
         "--to", "2023-03-31", "--out", str(out), *extra],
    )  # fmt: skip


@pytest.fixture(scope="module")
def exog_model(data_dir: Path, programmed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exog") / "lgbm"
    r = _train(data_dir, out, "--exog", f"cmg_prog={programmed}:{BUS}")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["exog"] == [
        {"name": "cmg_prog", "dataset": "cmg-programmed", "key": BUS, "known_days": 0}
    ]
    return out


def test_train_records_the_inputs_and_the_predictor_reads_them(exog_model: Path) -> None:
    card = json.loads((exog_model / "card.json").read_text())
    assert card["features"] == [*BASE_FEATURES, "exog_cmg_prog"]
    model = OnnxModel(exog_model)
    assert model.exog_inputs == (ExogInput("cmg_prog", 0, "cmg-programmed", BUS),)


def test_predict_with_and_without_the_input(
    exog_model: Path, programmed: Path, data_dir: Path
) -> None:
    base = ["forecast", "predict", "--model", str(exog_model), "--prices",
            str(data_dir / VALDIVIA), "--now", "2023-04-10T04:00:00+00:00", "--json"]  # fmt: skip
    # The card's key is used when the file is named without one.
    ok = CliRunner().invoke(app, [*base, "--exog", f"cmg_prog={programmed}"])
    assert ok.exit_code == 0, ok.output
    steps = json.loads(ok.stdout)["steps"]
    assert len(steps) == 24
    assert all(np.isfinite(s["p50"]) for s in steps)
    missing = CliRunner().invoke(app, base)
    assert isinstance(missing.exception, DataError)
    assert str(missing.exception) == (
        f"the model needs the exogenous input(s) cmg_prog (dataset cmg-programmed, key {BUS}): "
        "give --exog NAME=FILE[:KEY]"
    )
    other_bus = CliRunner().invoke(app, [*base, "--exog", f"cmg_prog={programmed}:{OTHER_BUS}"])
    assert "the model was trained on 'VALDIVIA_______220'" in str(other_bus.exception)
    extra = CliRunner().invoke(app, [*base, "--exog", f"cmg_prog={programmed}", "--exog",
                                     f"demand={programmed}"])  # fmt: skip
    assert "--exog demand: the model reads no input 'demand'" in str(extra.exception)
    # After the file's last day the programmed CMg of the target day is not there: one line.
    late = [*base[:-3], "--now", "2023-04-20T04:00:00+00:00", "--json"]
    gone = CliRunner().invoke(app, [*late, "--exog", f"cmg_prog={programmed}"])
    assert isinstance(gone.exception, DataError)
    assert "'cmg_prog' has no value for 2023-04-20 04:00 UTC" in str(gone.exception)


def test_train_with_a_gap_in_the_input_names_the_first_missing_hour(
    data_dir: Path, programmed: Path, tmp_path: Path
) -> None:
    lines = programmed.read_text().splitlines()
    holed = tmp_path / programmed.name
    holed.write_text("\n".join(ln for ln in lines if "2023-02-14T1" not in ln) + "\n")
    r = _train(data_dir, tmp_path / "m", "--exog", f"cmg_prog={holed}:{BUS}")
    assert isinstance(r.exception, DataError)
    assert "'cmg_prog' has no value for 2023-02-14 10:00 UTC" in str(r.exception)
    assert f"2023-03-31 into cmg_prog={holed}" in str(r.exception)
    assert not (tmp_path / "m").exists()


def test_eval_feeds_the_input_to_every_forecast(
    exog_model: Path, programmed: Path, data_dir: Path
) -> None:
    r = CliRunner().invoke(
        app,
        ["forecast", "eval", "--prices", str(data_dir / VALDIVIA), "--model", str(exog_model),
         "--from", "2023-04-01", "--to", "2023-04-07", "--json",
         "--exog", f"cmg_prog={programmed}"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["results"]
    assert rows[0]["strategy"] == "lgbm"
    assert rows[0]["days"] == 7
    no_exog = CliRunner().invoke(
        app,
        ["forecast", "eval", "--prices", str(data_dir / VALDIVIA), "--model", str(exog_model),
         "--from", "2023-04-01", "--to", "2023-04-07"],
    )  # fmt: skip
    assert "needs the exogenous input(s) cmg_prog" in str(no_exog.exception)
