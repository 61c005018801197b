"""The naive forecasters: persistence, the week mean, and their empirical bands.

They are the baselines every trained model is judged against and the gateway's default
forecasters (`optimizer.forecaster = "persistence" | "week-mean"`). Numpy and pandas only: they
run on the gateway's planning path.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pandas as pd

from bessai.errors import ConfigError, DataError
from bessai.market.bands import Bands
from bessai.market.scenarios import days_back

FloatArray = npt.NDArray[np.float64]

#: A forecaster sees the history (prices before the first target step, UTC index), the target
#: steps and the market's time zone, and returns one price per target step.
Forecaster = Callable[[pd.Series, pd.DatetimeIndex, str], FloatArray]
#: Bands around a forecast: (history, target steps, tz, the point planned on) -> Bands.
BandForecaster = Callable[[pd.Series, pd.DatetimeIndex, str, FloatArray], Bands]


def _slot_keys(index: pd.DatetimeIndex, tz: str) -> npt.NDArray[np.int64]:
    local = index.tz_convert(tz)
    return np.asarray(local.hour * 60 + local.minute, dtype=np.int64)


def _profile(
    history: pd.Series, days: int, target: pd.DatetimeIndex, tz: str, quantile: float | None = None
) -> FloatArray:
    """Mean (or ``quantile``) price per local time of day over the last ``days`` local days of
    history, laid on the target steps. A slot the history lacks (the hour DST skipped) takes
    the previous slot."""
    if history.empty:
        raise ConfigError("back-test: a forecaster needs at least one day of history")
    hist_index = history.index
    assert isinstance(hist_index, pd.DatetimeIndex)
    step_s = (hist_index[1] - hist_index[0]).total_seconds() if len(hist_index) > 1 else 3600
    # Only the tail can hold the last `days` local days (plus slack for a 25-hour day).
    tail = history.iloc[-int((days + 1) * 86400 / step_s) - 2 :]
    tail_index = tail.index
    assert isinstance(tail_index, pd.DatetimeIndex)
    local_dates = tail_index.tz_convert(tz).date
    last_days = sorted(set(local_dates))[-days:]
    recent = tail[np.isin(local_dates, last_days)]
    if recent.isna().any():
        # A gap the loader left out: averaging around it would forecast from made-up days.
        raise DataError(
            f"forecast: the last {days} day(s) of history have no price for "
            f"{int(recent.isna().sum())} steps (a gap longer than the loader fills)"
        )
    recent_index = recent.index
    assert isinstance(recent_index, pd.DatetimeIndex)
    groups = recent.groupby(_slot_keys(recent_index, tz))
    stats = groups.mean() if quantile is None else groups.quantile(quantile)
    keys = _slot_keys(target, tz)
    out = pd.Series(keys).map(stats).ffill().bfill()
    return out.to_numpy(dtype=np.float64)


def empirical_bands(
    history: pd.Series, target: pd.DatetimeIndex, tz: str, point: FloatArray
) -> Bands:
    """p10/p90 of the last seven days at the same local time of day around a point forecast
    (kept inside the band): the naive forecasters' uncertainty, for the risk-aware mode."""
    p10 = _profile(history, 7, target, tz, quantile=0.1)
    p90 = _profile(history, 7, target, tz, quantile=0.9)
    return Bands(p10=np.minimum(p10, point), p50=point, p90=np.maximum(p90, point))


def _ends_the_day_before(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> bool:
    """Whether the history ends with the step right before ``target`` and the target starts a
    local day (at midnight, or at 01:00 when DST skips midnight): the day-ahead case, forecast
    from whole local days."""
    if history.empty or len(target) == 0:
        return False
    start = target[0].tz_convert(tz)
    last = history.index[-1]
    step = target[1] - target[0] if len(target) > 1 else pd.Timedelta(hours=1)
    return bool(last + step == target[0] and last.tz_convert(tz).date() != start.date())


def _same_time_before(
    history: pd.Series, target: pd.DatetimeIndex, tz: str, days: int
) -> FloatArray:
    """Mean of the last ``days`` known prices 24 h, 48 h, ... before each target step: the
    day-ahead profile when the history ends at midnight, else (a re-plan during the day, or
    prices published with a lag) the most recent price of each step's time of day."""
    if _ends_the_day_before(history, target, tz):
        return _profile(history, days, target, tz)
    return np.asarray(np.nanmean(days_back(history, target, days), axis=0), dtype=np.float64)


def persistence(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> FloatArray:
    """The latest known price at the same time of day (yesterday's, day-ahead)."""
    return _same_time_before(history, target, tz, 1)


def week_mean(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> FloatArray:
    """Mean of the last seven known prices at the same time of day."""
    return _same_time_before(history, target, tz, 7)


#: Decay per hour of the latest anomaly in ``week-mean-ar``; chosen on Crucero 2022 re-planned
#: hourly with a 1 h publication lag (docs/benchmarks.md, "Closing the gap"), never on 2023.
ANOMALY_DECAY_PER_H = 0.9


#: Days averaged by ``recent-mean`` and ``recent-mean-ar``: the window that earned most on
#: Crucero 2022 (7, 10, 14, 21, 28, 42 and 56 days tried; docs/benchmarks.md), never on 2023.
RECENT_DAYS = 28


def recent_mean(days: int) -> Forecaster:
    """The mean of the last ``days`` known prices at the same time of day: longer than a week,
    it averages out more of the spikes a plan cannot time, at the cost of following a change of
    regime more slowly (which ``recent-mean-ar``'s latest-price term makes up for)."""
    if days < 1:
        raise ConfigError(f"forecast: the window must be at least one day, not {days}")

    def forecast(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> FloatArray:
        # Per target step, not per local day: a gap or a DST day only drops its own steps.
        return np.asarray(np.nanmean(days_back(history, target, days), axis=0), dtype=np.float64)

    return forecast


#: Steps of a week at the coarsest common step (hourly): the floor's window.
_WEEK_STEPS = 168


def anomaly_decay(decay_per_h: float, days: int = 7) -> Forecaster:
    """The mean of the last ``days`` days at the same time of day plus the latest known price's
    departure from its own such mean, fading by ``decay_per_h`` per hour of lead: prices stay
    high (or at zero) for hours, so the last one known says more about the next few hours than
    the days do, and nothing a day later."""
    if not 0.0 <= decay_per_h < 1.0:
        raise ConfigError(f"forecast: the anomaly decay must be in [0, 1), not {decay_per_h:g}")

    def forecast(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> FloatArray:
        base = _same_time_before(history, target, tz, days)
        known = history.dropna()
        if known.empty:
            return base
        last_at = known.index[-1]
        last_index = pd.DatetimeIndex([last_at])
        before = known.iloc[:-1]
        anomaly = float(known.iloc[-1]) - float(np.nanmean(days_back(before, last_index, days)))
        lead_h = np.asarray((target - last_at) / pd.Timedelta(hours=1), dtype=np.float64)
        # Never below the lowest price of the last week: a price at zero under a week-mean
        # of 50 would otherwise forecast negative prices the CMg never has.
        floor = min(float(known.iloc[-_WEEK_STEPS:].min()), float(base.min()))
        return np.maximum(base + anomaly * decay_per_h**lead_h, floor)

    return forecast


#: The naive forecasters by name (the back-test adds `perfect` and `rule` of its own).
FORECASTERS: dict[str, Forecaster] = {
    "persistence": persistence,
    "week-mean": week_mean,
    "week-mean-ar": anomaly_decay(ANOMALY_DECAY_PER_H),
    "recent-mean": recent_mean(RECENT_DAYS),
    "recent-mean-ar": anomaly_decay(ANOMALY_DECAY_PER_H, RECENT_DAYS),
}
