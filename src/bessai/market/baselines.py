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


def persistence(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> FloatArray:
    """Yesterday's price at the same local time of day."""
    return _profile(history, 1, target, tz)


def week_mean(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> FloatArray:
    """Mean of the last seven days at the same local time of day."""
    return _profile(history, 7, target, tz)


#: The naive forecasters by name (the back-test adds `perfect` and `rule` of its own).
FORECASTERS: dict[str, Forecaster] = {"persistence": persistence, "week-mean": week_mean}
