"""Re-planning during the day in the back-test: the publication lag, the day-ahead case as a
special case, the intraday-aware naive forecasters and the anomaly forecaster."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bessai.analysis.backtest import backtest
from bessai.analysis.intraday import Replan, Replanner
from bessai.analysis.settle import settle_plant
from bessai.cli import app
from bessai.errors import ConfigError, DataError
from bessai.market.baselines import (
    FORECASTERS,
    anomaly_decay,
    persistence,
    recent_mean,
    week_mean,
)
from bessai.market.prices import PriceSeries, load_prices
from bessai.market.scenarios import days_back, empirical_scenarios
from bessai.optimize import StorageSpec
from bessai.optimize.horizon import PlanSettings

FIRST, LAST = date(2023, 3, 1), date(2023, 3, 4)


@pytest.fixture(scope="module")
def valdivia(data_dir: Path) -> PriceSeries:
    return load_prices(data_dir / "cen_cmg_valdivia220_2023.tsv")


def test_one_replan_a_day_without_lag_is_the_daily_plan(valdivia: PriceSeries) -> None:
    daily = backtest(valdivia, "week-mean", StorageSpec(), first_day=FIRST, last_day=LAST)
    once = backtest(
        valdivia, "week-mean", StorageSpec(), first_day=FIRST, last_day=LAST,
        replan=Replan(every_steps=24, lag_steps=0),
    )  # fmt: skip
    assert once.net_revenue == pytest.approx(daily.net_revenue, rel=1e-12)
    np.testing.assert_array_equal(once.charge_kw, daily.charge_kw)


def test_hourly_replans_see_only_published_prices(valdivia: PriceSeries) -> None:
    seen: list[tuple[pd.Timestamp, pd.Timestamp]] = []

    def spy(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> np.ndarray:
        seen.append((history.index[-1], target[0]))
        return week_mean(history, target, tz)

    r = backtest(
        valdivia, "spy", StorageSpec(), first_day=FIRST, last_day=FIRST,
        forecasters={"spy": spy}, replan=Replan(every_steps=1, lag_steps=3),
    )  # fmt: skip
    assert len(seen) == 24  # one plan per hour
    for last_known, start in seen:
        assert start - last_known == pd.Timedelta(hours=4)  # lag 3 h: prices up to t-4 h start
    assert len(r.days) == 1
    assert not np.isnan(r.forecast).any()


def test_rule_and_carbon_are_daily_only(valdivia: PriceSeries) -> None:
    with pytest.raises(ConfigError, match="rule engine plans once a day"):
        backtest(valdivia, "rule", StorageSpec(), first_day=FIRST, last_day=FIRST,
                 replan=Replan())  # fmt: skip


def test_bad_replan_is_named() -> None:
    with pytest.raises(ConfigError, match="at least one step"):
        Replan(every_steps=0)
    with pytest.raises(ConfigError, match="lag"):
        Replan(lag_steps=-1)


def test_days_back_skips_unpublished_prices(valdivia: PriceSeries) -> None:
    k = int(valdivia.index.get_indexer([pd.Timestamp("2023-03-10 15:00", tz="UTC")])[0])
    history = valdivia.prices.iloc[: k - 5]  # the last 5 h not published yet
    target = valdivia.index[k : k + 24]
    back = days_back(history, target, 7)
    values = valdivia.prices
    for i, t in enumerate(target):
        day = pd.Timedelta(hours=24)
        known = [t - m * day for m in range(1, 11) if t - m * day < valdivia.index[k - 5]]
        assert back[:, i] == pytest.approx(values.reindex(known[:7]).to_numpy())
    assert week_mean(history, target, valdivia.timezone) == pytest.approx(back.mean(axis=0))
    assert persistence(history, target, valdivia.timezone) == pytest.approx(back[0])
    paths = empirical_scenarios(history, target, week_mean(history, target, "UTC"), 7)
    assert paths.shape == (7, 24)
    assert paths.min() >= min(back.min(), 0.0)


def test_anomaly_forecast_starts_at_the_last_price_and_fades(valdivia: PriceSeries) -> None:
    k = int(valdivia.index.get_indexer([pd.Timestamp("2023-03-10 15:00", tz="UTC")])[0])
    history, target = valdivia.prices.iloc[:k], valdivia.index[k : k + 24]
    base = week_mean(history, target, valdivia.timezone)
    f = anomaly_decay(0.5)(history, target, valdivia.timezone)
    last = float(history.iloc[-1])
    own = float(days_back(history.iloc[:-1], history.index[-1:], 7).mean())
    assert f[0] == pytest.approx(max(base[0] + 0.5 * (last - own), min(base.min(), 0.0)))
    assert f[-1] == pytest.approx(base[-1], abs=1e-3 * max(1.0, abs(last - own)))
    assert "week-mean-ar" in FORECASTERS
    with pytest.raises(ConfigError, match="decay"):
        anomaly_decay(1.0)


def test_recent_mean_averages_the_window(valdivia: PriceSeries) -> None:
    k = int(valdivia.index.get_indexer([pd.Timestamp("2023-06-10 04:00", tz="UTC")])[0])
    history, target = valdivia.prices.iloc[:k], valdivia.index[k : k + 24]
    f = recent_mean(28)(history, target, valdivia.timezone)
    assert f == pytest.approx(np.nanmean(days_back(history, target, 28), axis=0))
    assert {"recent-mean", "recent-mean-ar"} <= set(FORECASTERS)
    with pytest.raises(ConfigError, match="at least one day"):
        recent_mean(0)


def test_no_price_at_all_is_named() -> None:
    idx = pd.date_range("2023-01-01", periods=3, freq="h", tz="UTC")
    with pytest.raises(DataError, match="no known price"):
        days_back(pd.Series([np.nan] * 3, index=idx), idx + pd.Timedelta(days=1), 7)


def test_replanner_request_holds_the_lag(valdivia: PriceSeries) -> None:
    base = PlanSettings(StorageSpec(), 1.0)
    r = Replanner.of(valdivia, week_mean, None, base, (Replan(1, 2), settle_plant, 50.0))
    req = r.request(1000, 1010, 40.0)
    assert req.history.index[-1] == valdivia.index[997]
    assert list(req.target) == list(valdivia.index[1000:1010])
    assert (req.soc_now_pct, req.soc_final_pct) == (40.0, 50.0)


def test_cli_replans(data_dir: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["backtest", "--prices", str(data_dir / "cen_cmg_valdivia220_2023.tsv"),
         "--forecaster", "week-mean-ar", "--from", "2023-03-01", "--to", "2023-03-02",
         "--replan-every-h", "2", "--lag-h", "1", "--scenario-days", "3", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert '"every_steps": 2' in result.output
    assert '"scenario_days": 3' in result.output
    bad = CliRunner().invoke(
        app,
        ["backtest", "--prices", str(data_dir / "cen_cmg_valdivia220_2023.tsv"),
         "--forecaster", "week-mean", "--replan-every-h", "0.5"],
    )  # fmt: skip
    assert bad.exit_code != 0
    assert isinstance(bad.exception, ConfigError)
    assert "whole number" in str(bad.exception)
