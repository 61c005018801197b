"""Forecast features built from the price series itself.

One row per (issue time, target step). The issue time is the start of the first target step;
every feature uses only prices before it, so the same code builds training rows (issue times
inside the history) and the gateway's live rows (issue time = now). This module is on the
gateway's prediction path: numpy, pandas and ``holidays`` only, never the training stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import holidays
import numpy as np
import numpy.typing as npt
import pandas as pd

from bessai.errors import DataError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Price lags in hours. 24 h and 48 h carry the daily shape; 168 h the weekly one.
LAGS_H: tuple[int, ...] = (24, 48, 168)

#: The features every model sees, in the column order of the matrix (and the ONNX input).
BASE_FEATURES: tuple[str, ...] = (
    "lag_24h",
    "lag_48h",
    "lag_168h",
    "week_mean",  # mean of the same step over the last seven days
    "week_std",
    "mean_24h",  # statistics of the 24 h / 168 h before the issue time
    "std_24h",
    "min_24h",
    "max_24h",
    "zero_share_24h",  # CMg sits at exactly 0 in solar hours; how often it did yesterday
    "mean_168h",
    "std_168h",
    "last_price",
    "hour",  # local, fractional for sub-hourly steps
    "weekday",
    "weekend",
    "holiday",  # Chilean public holiday (the market's calendar)
    "month",
    "lead_h",  # hours from the issue time to the target step
)

#: History a row needs before its issue time: the longest lag plus the rolling week.
HISTORY_H = 168


#: Days back an exogenous value may be taken from when the target's own is not yet published.
MAX_EXOG_DAYS_BACK = 7


class ExogMissingError(DataError):
    """An exogenous value a forecast reads is not there (its day not fetched yet, or a gap):
    the gateway plans on its fallback forecaster instead."""


@dataclass(frozen=True, slots=True)
class ExogInput:
    """One exogenous input of a model: its column name (``exog_<name>`` in the features), the
    fetched dataset and key it came from, and when its values are known.

    ``known_days``: the values of local day D are published by the start of local day
    D + ``known_days`` (0: the day before, as the programmed CMg; 1: after the day, as a
    realised series). A feature row reads the target step's own value when it is known at the
    issue time, else the same step of the latest day that is (:func:`exog_positions`)."""

    name: str
    known_days: int = 0
    dataset: str = ""
    key: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise DataError(
                f"exogenous input {self.name!r}: a name is letters, digits and underscores"
            )
        if not 0 <= self.known_days < MAX_EXOG_DAYS_BACK - 1:
            raise DataError(
                f"exogenous input {self.name}: known_days {self.known_days} is not 0.."
                f"{MAX_EXOG_DAYS_BACK - 2}"
            )

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "dataset": self.dataset,
            "key": self.key,
            "known_days": self.known_days,
        }

    @classmethod
    def from_json(cls, obj: Any, where: str) -> ExogInput:
        """An entry of a model card's ``exog`` list (a bare name: an input read at the target
        step, as cards before the availability rule were)."""
        if isinstance(obj, str):
            return cls(obj)
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            raise DataError(f"{where}: an exog entry is not {{name, dataset, key, known_days}}")
        try:
            return cls(
                obj["name"],
                int(obj.get("known_days", 0)),
                str(obj.get("dataset", "")),
                str(obj.get("key", "")),
            )
        except (TypeError, ValueError):
            raise DataError(f"{where}: exog {obj['name']}: known_days is not a number") from None


@lru_cache(maxsize=4)
def _holiday_calendar(country: str) -> holidays.HolidayBase:
    return holidays.country_holidays(country)


def steps_per_hour(step_s: float) -> int:
    """Price steps per hour for a step of `step_s` seconds (a divisor of an hour)."""
    sph = 3600.0 / step_s
    if sph < 1 or sph != int(sph):
        raise DataError(f"forecast: the step must divide one hour, got {step_s:g} s")
    return int(sph)


def feature_names(exog: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The model's input columns, in order, with the exogenous series appended."""
    return BASE_FEATURES + tuple(f"exog_{name}" for name in exog)


def _window_stats(values: FloatArray, issue: IntArray, width: int) -> tuple[FloatArray, ...]:
    """mean, std, min, max and share of zeros of ``values[i - width : i]`` for each issue i."""
    windows = np.lib.stride_tricks.sliding_window_view(values, width)
    w = windows[issue - width]
    return (
        w.mean(axis=1),
        w.std(axis=1),
        w.min(axis=1),
        w.max(axis=1),
        (w == 0.0).mean(axis=1),
    )


def _calendar(
    targets: pd.DatetimeIndex, tz: str, holiday_country: str
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Local hour (fractional), weekday, public holiday (0/1) and month of each target step."""
    local = targets.tz_convert(tz)
    hour = np.asarray(local.hour + local.minute / 60.0, dtype=np.float64)
    weekday = np.asarray(local.day_of_week, dtype=np.float64)
    calendar = _holiday_calendar(holiday_country)
    dates = pd.Index(local.date)
    is_holiday = {d: float(d in calendar) for d in dates.unique()}
    holiday = np.asarray(dates.map(is_holiday), dtype=np.float64)
    return hour, weekday, holiday, np.asarray(local.month, dtype=np.float64)


def _local_days(index: pd.DatetimeIndex, tz: str) -> IntArray:
    """The local calendar day of each step, as a day number."""
    local = index.tz_convert(tz).tz_localize(None)
    return np.asarray(local.values.astype("datetime64[D]").astype(np.int64), dtype=np.int64)


def exog_positions(
    index: pd.DatetimeIndex,
    tz: str,
    origin: IntArray,
    target: IntArray,
    known_days: int,
) -> IntArray:
    """Where a row reads an exogenous value: the target step itself when its local day is
    published by the issue time (day D is known from the start of day D + ``known_days``),
    else the same step one, two, ... days earlier, the first that is. Never a value
    published after the issue time."""
    steps = len(index)
    day = 24 * steps_per_hour((index[1] - index[0]).total_seconds())
    local_day = _local_days(index, tz)
    issue_day = local_day[origin]
    out = np.full(target.shape, -1, dtype=np.int64)
    for back in range(MAX_EXOG_DAYS_BACK):
        pos = target - back * day
        ok = (out < 0) & (pos >= 0)
        ok[ok] &= local_day[np.clip(pos[ok], 0, steps - 1)] + known_days <= issue_day[ok]
        out[ok] = pos[ok]
    if (out < 0).any():
        raise DataError(f"forecast: no exogenous value published {MAX_EXOG_DAYS_BACK} days back")
    return out


def _exog_columns(
    exog: pd.DataFrame,
    index: pd.DatetimeIndex,
    tz: str,
    rows: tuple[IntArray, IntArray],
    known_days: Mapping[str, int],
) -> list[FloatArray]:
    """The exogenous columns as known at each row's issue time (:func:`exog_positions`); a
    missing value is an error naming the input and the first hour without one."""
    if len(exog) != len(index):
        raise DataError("forecast: exogenous columns must be indexed like the prices")
    origin, target = rows
    out: list[FloatArray] = []
    for name in exog.columns:
        pos = exog_positions(index, tz, origin, target, known_days.get(str(name), 0))
        col = exog[name].to_numpy(dtype=np.float64)[pos]
        if np.isnan(col).any():
            first = index[int(np.sort(pos[np.isnan(col)])[0])]
            raise ExogMissingError(
                f"forecast: exogenous input {name!r} has no value for "
                f"{first:%Y-%m-%d %H:%M} UTC (and maybe later hours)"
            )
        out.append(col)
    return out


def build_features(
    values: FloatArray,
    index: pd.DatetimeIndex,
    issue: IntArray,
    horizon: int,
    tz: str,
    *,
    exog: pd.DataFrame | None = None,
    known_days: Mapping[str, int] | None = None,
    holiday_country: str = "CL",
) -> tuple[npt.NDArray[np.float32], IntArray]:
    """The feature matrix for targets ``issue[k] + h``, ``h < horizon``, rows in issue-major
    order, and the target positions.

    ``values`` and ``index`` are the regular series (positions at or after an issue time may be
    NaN: they are never read for that issue). A lag that would reach into the forecast window
    (only on a 25-hour day) takes the same step one day earlier. ``exog`` holds extra columns
    indexed like ``index`` (values of any time: each row reads only what is published by its
    issue time, by the column's ``known_days``, default 0: the day before; :func:`exog_positions`).
    """
    if len(index) != len(values):
        raise DataError("forecast: values and index differ in length")
    if len(index) < 2:
        raise DataError("forecast: the series needs at least two steps")
    step_s = (index[1] - index[0]).total_seconds()
    sph = steps_per_hour(step_s)
    day = 24 * sph
    need = HISTORY_H * sph
    issue = np.asarray(issue, dtype=np.int64)
    if issue.size and issue.min() < need:
        raise DataError(
            f"forecast: an issue time needs {HISTORY_H} h of history before it; "
            f"the first has {int(issue.min()) // sph} h"
        )
    target = (issue[:, None] + np.arange(horizon)[None, :]).ravel()
    if target.size and target.max() >= len(values):
        raise DataError("forecast: the target window runs past the end of the index")
    origin = np.repeat(issue, horizon)

    def lagged(steps: int) -> FloatArray:
        pos = target - steps
        pos = np.where(pos >= origin, pos - day, pos)  # never read inside the window
        return np.asarray(values[pos], dtype=np.float64)

    lags = [lagged(h * sph) for h in LAGS_H]
    week = np.stack([lagged(d * day) for d in range(1, 8)], axis=1)
    mean24, std24, min24, max24, zero24 = _window_stats(values, issue, day)
    mean168, std168, *_ = _window_stats(values, issue, 7 * day)

    hour, weekday, holiday, month = _calendar(index[target], tz, holiday_country)
    columns: list[FloatArray] = [
        *lags,
        week.mean(axis=1),
        week.std(axis=1),
        np.repeat(mean24, horizon),
        np.repeat(std24, horizon),
        np.repeat(min24, horizon),
        np.repeat(max24, horizon),
        np.repeat(zero24, horizon),
        np.repeat(mean168, horizon),
        np.repeat(std168, horizon),
        values[origin - 1],
        hour,
        weekday,
        (weekday >= 5).astype(np.float64),
        holiday,
        month,
        (target - origin) / sph,
    ]
    if exog is not None:
        columns += _exog_columns(exog, index, tz, (origin, target), known_days or {})
    x = np.stack(columns, axis=1).astype(np.float32)
    if np.isnan(x[:, : len(LAGS_H) + 2]).any():
        raise DataError("forecast: the history has missing prices inside the lag window")
    return x, target


def issue_positions(
    index: pd.DatetimeIndex, tz: str, *, every_h: int, horizon: int, first: int
) -> IntArray:
    """Positions of the issue times for training: local times of day that are multiples of
    ``every_h`` hours (0 h = the day-ahead issue at midnight), with a full horizon after them
    and at least ``first`` steps of history before."""
    local = index.tz_convert(tz)
    on_grid = (local.minute == 0) & (np.asarray(local.hour) % every_h == 0)
    pos = np.flatnonzero(on_grid)
    return pos[(pos >= first) & (pos + horizon <= len(index))].astype(np.int64)


def priced_windows(
    values: FloatArray, issue: IntArray, *, before: int, after: int
) -> npt.NDArray[np.bool_]:
    """For each issue position, whether every value in ``[issue - before, issue + after)``
    has a price (no gap left out by the loader in the history or the target window)."""
    missing = np.concatenate([[0], np.cumsum(~np.isfinite(values))])
    lo = np.clip(issue - before, 0, len(values))
    hi = np.clip(issue + after, 0, len(values))
    return np.asarray(missing[hi] - missing[lo] == 0)


def hour_of(x: npt.NDArray[np.float32]) -> FloatArray:
    """The local hour of day of each feature row."""
    return np.asarray(x[:, BASE_FEATURES.index("hour")], dtype=np.float64)


def spread_of(x: npt.NDArray[np.float32]) -> FloatArray:
    """The spread of the week before the issue time: the unit of the scaled bands."""
    return np.asarray(x[:, BASE_FEATURES.index("std_168h")], dtype=np.float64)


def baseline_point(kind: str, x: npt.NDArray[np.float32]) -> FloatArray:
    """The seasonal-naive (``naive``: the price 24 h before) or ``week-mean`` forecast, read
    off the feature rows."""
    column = "lag_24h" if kind == "naive" else "week_mean"
    return np.asarray(x[:, BASE_FEATURES.index(column)], dtype=np.float64)


def with_base(raw: FloatArray, x: npt.NDArray[np.float32], target: str) -> FloatArray:
    """Model outputs back on the price scale: a ``residual`` model predicts the correction to
    the week-mean forecast (the strong baseline it then only has to improve on)."""
    if target == "level":
        return raw
    return raw + baseline_point("week-mean", x)[:, None]
