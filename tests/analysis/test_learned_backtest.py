"""The LightGBM forecaster in the back-test: asked from the last published price, fitted on
complete published days only, refitted monthly, its fits shared through the cache, and
reachable from `bessai backtest`."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bessai.analysis.backtest import backtest
from bessai.analysis.intraday import Replan
from bessai.analysis.learned import LearnedForecaster, LearnedSpec, blend, learned_forecasters
from bessai.cli import app
from bessai.errors import ConfigError, DataError
from bessai.market.baselines import FORECASTERS
from bessai.market.predictor import live_features
from bessai.market.prices import PriceSeries, load_prices
from bessai.market.training import TrainSpec, fit_model
from bessai.optimize import StorageSpec

#: Small models: the tests check where the model looks, not how well it forecasts.
SMALL = TrainSpec(issue_every_h=6, n_estimators=20, n_jobs=1)


@pytest.fixture(scope="module")
def valdivia(data_dir: Path) -> PriceSeries:
    return load_prices(data_dir / "cen_cmg_valdivia220_2023.tsv")


def _at(series: PriceSeries, local: str) -> int:
    ts = pd.Timestamp(local, tz=series.timezone).tz_convert("UTC")
    return int(series.index.get_indexer([ts])[0])


def test_forecast_from_the_last_published_price(valdivia: PriceSeries) -> None:
    k = _at(valdivia, "2023-02-10 15:00")
    lag = 3
    history, target = valdivia.prices.iloc[: k - lag], valdivia.index[k : k + 9]
    model = LearnedForecaster(LearnedSpec(SMALL))
    f = model(history, target, valdivia.timezone)
    assert model.fits == 1
    assert model.model is not None
    # The model is the one fitted on the complete days before the last published price's.
    local = valdivia.index.tz_convert(valdivia.timezone)
    train = valdivia.prices[np.asarray(local.date) < date(2023, 2, 10)]
    assert isinstance(train.index, pd.DatetimeIndex)
    own = fit_model(train.to_numpy(dtype=np.float64), train.index, valdivia.timezone, SMALL)
    # Its issue time is the cut (k - lag): the first `lag` steps are dropped.
    _, x, last = live_features(
        history, valdivia.index[k - lag], lag + 9, 3600.0, "America/Santiago"
    )
    assert last == pytest.approx(float(valdivia.prices.iloc[k - lag - 1]))
    np.testing.assert_allclose(f, own.forecast(x)[lag:, 3])
    assert f.shape == (9,)
    # Prices not yet published change nothing.
    changed = valdivia.prices.copy()
    changed.iloc[k - lag :] = 999.0
    again = LearnedForecaster(LearnedSpec(SMALL))(
        changed.iloc[: k - lag], target, "America/Santiago"
    )
    np.testing.assert_array_equal(again, f)


def test_refits_once_or_every_month(valdivia: PriceSeries, tmp_path: Path) -> None:
    storage = StorageSpec(max_charge_kw=1000, capacity_kwh=4000)
    first, last = date(2023, 1, 31), date(2023, 2, 2)
    monthly = learned_forecasters(LearnedSpec(SMALL, "monthly", cache=tmp_path))
    daily = backtest(valdivia, "lgbm", storage, first_day=first, last_day=last, forecasters=monthly)
    model = monthly["lgbm"]
    assert isinstance(model, LearnedForecaster)
    # The plans of Jan 31 and Feb 1 fit on January's complete days; Feb 2's on February's.
    assert model.fits == 2
    assert model.fitted_for == "2023-02"
    once = learned_forecasters(LearnedSpec(SMALL, "once"))
    backtest(valdivia, "lgbm", storage, first_day=first, last_day=last, forecasters=once)
    assert getattr(once["lgbm"], "fits", None) == 1
    # Re-planned hourly with a 1 h lag, the same complete days are published: the cached fits.
    again = learned_forecasters(LearnedSpec(SMALL, "monthly", cache=tmp_path))
    hourly = backtest(valdivia, "lgbm", storage, first_day=first, last_day=last,
                      forecasters=again, replan=Replan(1, 1))  # fmt: skip
    assert getattr(again["lgbm"], "fits", None) == 0
    assert len(list(tmp_path.glob("lgbm-*.pkl"))) == 2
    assert len(hourly.days) == len(daily.days) == 3
    assert not np.isnan(hourly.forecast).any()


def test_too_little_history_names_the_way_out(valdivia: PriceSeries) -> None:
    storage = StorageSpec()
    fc = learned_forecasters(LearnedSpec(SMALL))
    with pytest.raises(DataError, match="start the back-test later"):
        backtest(valdivia, "lgbm", storage, forecasters=fc, first_day=date(2023, 1, 20),
                 last_day=date(2023, 1, 20))  # fmt: skip
    with pytest.raises(ConfigError, match="--refit"):
        LearnedSpec(refit="weekly")


def test_blend_is_the_mean(valdivia: PriceSeries) -> None:
    k = _at(valdivia, "2023-03-10 12:00")
    history, target = valdivia.prices.iloc[:k], valdivia.index[k : k + 12]
    a, b = FORECASTERS["week-mean"], FORECASTERS["recent-mean-ar"]
    mixed = blend(a, b)(history, target, valdivia.timezone)
    np.testing.assert_allclose(
        mixed, 0.5 * (a(history, target, valdivia.timezone) + b(history, target, valdivia.timezone))
    )


def test_cli_backtests_lgbm(data_dir: Path) -> None:
    prices = str(data_dir / "cen_cmg_valdivia220_2023.tsv")
    result = CliRunner().invoke(
        app,
        ["backtest", "--prices", prices, "--forecaster", "lgbm-blend", "--from", "2023-01-30",
         "--to", "2023-01-30", "--refit", "monthly", "--issue-every-h", "6",
         "--replan-every-h", "1", "--lag-h", "1", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert '"forecaster": "lgbm-blend"' in result.output
    bad = CliRunner().invoke(
        app, ["backtest", "--prices", prices, "--forecaster", "lgbm", "--issue-every-h", "5"]
    )
    assert isinstance(bad.exception, ConfigError)
    assert "--issue-every-h" in str(bad.exception)
