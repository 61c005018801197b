"""The forecast the agent sees: at each step, the next F+1 prices as the forecaster predicted
them. Two ways, as the optimizer's back-test plans (so the comparison is fair):

- ``daily`` (observation layout 1): the day-ahead forecast made at the start of the step's
  market day from the prices before that day;
- ``hourly`` (layout 2): a forecast re-made at every step from the prices published by then
  (those of the steps that started ``lag`` steps or more before it), as the intraday LP
  re-plans (:mod:`bessai.analysis.intraday`) and the gateway's planner forecasts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from bessai.errors import ConfigError
from bessai.market.baselines import FORECASTERS, Forecaster
from bessai.market.days import Day, market_days
from bessai.market.prices import PriceSeries

F64 = npt.NDArray[np.float64]
#: the forecasters read this much history before a day (week-mean: seven days)
HISTORY_DAYS = 8


def forecaster_named(name: str) -> Forecaster:
    """A day-ahead forecaster of `bessai.market.baselines` by name."""
    if name not in FORECASTERS:
        raise ConfigError(f"forecaster {name!r}: choose one of {', '.join(sorted(FORECASTERS))}")
    return FORECASTERS[name]


def day_windows(
    history: pd.Series,
    first_step: pd.Timestamp,
    series: PriceSeries,
    n_steps: int,
    width: int,
    forecaster: Forecaster,
) -> F64:
    """(n_steps, width) windows for the day starting at `first_step`, from one forecast of
    n_steps + width - 1 steps made on `history`."""
    target = pd.date_range(first_step, periods=n_steps + width - 1, freq=series.step)
    forecast = np.asarray(forecaster(history, target, series.timezone), dtype=np.float64)
    view: F64 = np.lib.stride_tricks.sliding_window_view(forecast, width)[:n_steps]
    return view


def step_windows(
    series: PriceSeries, start: int, n_steps: int, width: int, how: tuple[Forecaster, int]
) -> F64:
    """(n_steps, width) windows for the steps ``start .. start + n_steps - 1``, each a forecast
    made at its step from the prices published by then: ``how`` is (forecaster, lag in steps),
    the cut the intraday back-test's re-planner makes (`PriceSeries.published`)."""
    forecaster, lag = how
    out = np.empty((n_steps, width), dtype=np.float64)
    for k in range(n_steps):
        t = start + k
        history = series.published(t, lag)
        target = pd.date_range(series.index[t], periods=width, freq=series.step)
        out[k] = forecaster(history, target, series.timezone)
    return out


@dataclass(frozen=True, slots=True)
class TrainingSeries:
    """Contiguous real prices, the forecast window seen at each step, and the UTC hour of the
    first step (the environment's `start_hour_of_day`)."""

    prices_usd_mwh: F64
    windows_usd_mwh: F64
    start_hour_utc: float
    first: str
    last: str


def training_series(
    series: PriceSeries, forecaster: str, forecast_steps: int, lag_steps: int | None = None
) -> TrainingSeries:
    """The windows over every market day of `series` that has `HISTORY_DAYS` before it: the
    day-ahead forecast, or with `lag_steps` the forecast re-made at every step
    (:func:`step_windows`). A gap in the prices ends the usable stretch: the longest run of
    consecutive days is kept."""
    if series.unit != "USD/MWh":
        raise ConfigError(f"training prices must be in USD/MWh, got {series.unit}")
    predict = forecaster_named(forecaster)
    days = market_days(series)[HISTORY_DAYS:]
    runs: list[list[Day]] = []
    for day in days:  # market days are complete and priced; a gap splits the runs
        if runs and runs[-1][-1][2] == day[1]:
            runs[-1].append(day)
        else:
            runs.append([day])
    if not runs:
        raise ConfigError("training prices: no complete day with a week of history before it")
    run = max(runs, key=len)
    width = forecast_steps + 1
    s0, e1 = run[0][1], run[-1][2]
    rows = []
    if lag_steps is not None:
        rows.append(step_windows(series, s0, e1 - s0, width, (predict, lag_steps)))
    else:
        for _, s, e in run:
            history = series.prices.iloc[:s].dropna()
            rows.append(day_windows(history, series.index[s], series, e - s, width, predict))
    first = series.index[s0]
    return TrainingSeries(
        prices_usd_mwh=series.values[s0:e1],
        windows_usd_mwh=np.concatenate(rows),
        start_hour_utc=first.hour + first.minute / 60.0,
        first=str(run[0][0]),
        last=str(run[-1][0]),
    )


def scaled_copies(
    data: TrainingSeries, scales: tuple[float, ...], steps_per_day: int
) -> tuple[F64, F64]:
    """The prices and their windows repeated once per factor of `scales`, each copy cut to whole
    days so the hour of day stays aligned (domain randomisation: a node dearer or cheaper than
    the training one is no surprise). An episode across the seam of two copies sees the price
    level change once; with weeks of episodes over years of prices that is rare."""
    if not scales or any(not k > 0 for k in scales):
        raise ConfigError(f"price scales must be positive, got {scales}")
    keep = len(data.prices_usd_mwh) // steps_per_day * steps_per_day
    prices = np.concatenate([data.prices_usd_mwh[:keep] * k for k in scales])
    windows = np.concatenate([data.windows_usd_mwh[:keep] * k for k in scales])
    return prices, windows
