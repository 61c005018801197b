"""The forecast windows the policy reads in training and in the back-test."""

from __future__ import annotations

from datetime import date

import numpy as np

from bessai.market.baselines import FORECASTERS
from bessai.market.options import market_day_window
from bessai.market.prices import PriceSeries, load_prices
from bessai.policy.windows import scaled_copies, step_windows, training_series
from tests.conftest import DATA


def _march() -> PriceSeries:
    series = load_prices(DATA / "cen_cmg_crucero220_2019-2023.csv")
    return market_day_window(series, date(2022, 3, 1), date(2022, 3, 12))


def test_a_re_made_window_reads_only_the_prices_published_by_then() -> None:
    series = _march()
    recent = FORECASTERS["recent-mean-ar"]
    t = 24 * 10 + 7
    rows = step_windows(series, t, 3, 25, (recent, 1))
    # What the intraday LP's re-planner asks at step t: the prices up to t - lag.
    expected = recent(series.prices.iloc[: t - 1], series.index[t : t + 25], series.timezone)
    np.testing.assert_allclose(rows[0], expected)
    # The price of the step before is not published yet: changing it changes nothing; the
    # one before that is, and its anomaly moves the forecast.
    series.prices.iloc[t - 1] += 500.0
    np.testing.assert_allclose(step_windows(series, t, 1, 25, (recent, 1))[0], rows[0])
    series.prices.iloc[t - 2] += 500.0
    assert step_windows(series, t, 1, 25, (recent, 1))[0][0] > rows[0][0] + 100.0


def test_training_windows_are_re_made_every_step_with_a_lag() -> None:
    series = _march()
    daily = training_series(series, "recent-mean-ar", 24)
    hourly = training_series(series, "recent-mean-ar", 24, lag_steps=1)
    assert hourly.windows_usd_mwh.shape == daily.windows_usd_mwh.shape
    # Day-ahead, the window of 01:00 is the midnight one moved by a step; re-made, it is not.
    np.testing.assert_allclose(daily.windows_usd_mwh[1, :-1], daily.windows_usd_mwh[0, 1:])
    assert not np.allclose(hourly.windows_usd_mwh[5, :-1], hourly.windows_usd_mwh[4, 1:])


def test_scaled_copies_keep_whole_days_and_scale_the_windows_too() -> None:
    data = training_series(_march(), "week-mean", 24)
    prices, windows = scaled_copies(data, (1.0, 2.0), 24)
    days = len(data.prices_usd_mwh) // 24 * 24
    assert len(prices) == len(windows) == 2 * days
    np.testing.assert_allclose(prices[days:], 2.0 * data.prices_usd_mwh[:days])
    np.testing.assert_allclose(windows[days + 5], 2.0 * data.windows_usd_mwh[5])
