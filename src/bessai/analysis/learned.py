"""The LightGBM forecaster (issue 6) as a back-test forecaster, for daily and intraday plans.

A back-test forecaster is called with the prices *published* by planning time and the steps to
plan. On a daily plan the last published price is the one just before the first target step;
re-planned during the day with a publication lag it is ``lag`` steps earlier. The model is
asked from the **knowledge cut** (the end of the last published step): its issue time is the
cut, every feature reads prices before it (the same :func:`bessai.market.features.build_features`
rows as training and the gateway), and the first ``lag`` steps of its forecast, already
past but not yet published, are dropped. The intraday model is trained on issue times every
few hours of the day (``issue_every_h``), so the cut of any re-plan falls on a time of day it
has seen; the midnight-only or 6-hourly models of issue 6 would meet mostly unseen lead times.

**Walk-forward.** The model is fitted on the complete local days published by the cut (every
day before the one the last published price falls in): once, at the first forecast
(``refit="once"``), or again whenever a day of a new local month has begun to be published
(``"monthly"``, an expanding window). It never sees a price after the cut it forecasts from,
and a daily plan and re-plans with any lag under a day fit the very same models. The training
libraries (the `[train]` extra) are needed; the gateway runs exported ONNX models instead.
"""

from __future__ import annotations

import fcntl
import hashlib
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bessai.errors import ConfigError, DataError
from bessai.market.baselines import FORECASTERS, Forecaster
from bessai.market.features import HISTORY_H, steps_per_hour
from bessai.market.predictor import live_features
from bessai.market.training import FittedModel, TrainSpec, fit_model
from bessai.optimize.storage import FloatArray

#: The learned forecasters the back-test knows by name.
LEARNED: tuple[str, ...] = ("lgbm", "lgbm-blend")

#: How the learned forecaster is refitted: once before the first forecast, or every month.
REFITS: tuple[str, ...] = ("once", "monthly")

#: The naive forecaster the blend averages the model with (half and half).
BLEND_WITH = "recent-mean-ar"


@dataclass(frozen=True, slots=True)
class LearnedSpec:
    """What the back-test's LightGBM is: its training settings (``issue_every_h`` chooses the
    times of day it learns to forecast from), how often it is refitted, and the days of prices
    it needs before its first fit (plus the week its lag features read). ``cache``: a
    directory where fitted models are kept by a hash of their training prices and settings, so
    back-tests of the same prices share their fits (the study script's; pickles: give only a
    directory you own)."""

    train: TrainSpec = field(default_factory=lambda: TrainSpec(issue_every_h=3, n_jobs=1))
    refit: str = "once"
    min_train_days: int = 21
    cache: Path | None = None

    def __post_init__(self) -> None:
        if self.refit not in REFITS:
            raise ConfigError(f"--refit: {self.refit!r}; choose one of {', '.join(REFITS)}")
        if self.min_train_days < 1:
            raise ConfigError("back-test: the model needs at least one day of training prices")


@dataclass(slots=True)
class LearnedForecaster:
    """A walk-forward LightGBM as a back-test :data:`Forecaster` (callable). ``fits`` counts
    the models fitted so far."""

    spec: LearnedSpec
    model: FittedModel | None = None
    fitted_for: str | None = None
    fits: int = 0

    def _fit(self, history: pd.Series, tz: str, step_s: float) -> FittedModel:
        sph = steps_per_hour(step_s)
        need_h = self.spec.min_train_days * 24 + HISTORY_H
        known = int(history.notna().sum())
        if known < need_h * sph:
            last = history.index[-1].tz_convert(tz)
            raise DataError(
                f"back-test lgbm: {known // sph} h of complete days published by "
                f"{last:%Y-%m-%d %H:%M}; the model needs {need_h} h "
                f"({self.spec.min_train_days} days of training plus a week of lags): start "
                "the back-test later (--from)"
            )
        index = history.index
        assert isinstance(index, pd.DatetimeIndex)
        values = history.to_numpy(dtype=np.float64)
        if self.spec.cache is None:
            self.fits += 1
            return fit_model(values, index, tz, self.spec.train)
        path = self.spec.cache / _cache_name(history, self.spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Back-tests run side by side wait for one another's fit of the same prices.
        with path.with_suffix(".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if path.is_file():
                cached: FittedModel = pickle.loads(path.read_bytes())
                return cached
            self.fits += 1
            model = fit_model(values, index, tz, self.spec.train)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(pickle.dumps(model))
            tmp.replace(path)
        return model

    def __call__(self, history: pd.Series, target: pd.DatetimeIndex, tz: str) -> FloatArray:
        index = history.index
        assert isinstance(index, pd.DatetimeIndex)
        step = target[1] - target[0] if len(target) > 1 else index[-1] - index[-2]
        cut = index[-1] + step  # the end of the last published step
        lag = round((target[0] - cut) / step)
        if lag < 0:
            raise DataError("back-test lgbm: the history overlaps the steps to forecast")
        # The complete local days published by the cut: those before the last price's day.
        last_day = index[-1].tz_convert(tz).date()
        key = "once" if self.spec.refit == "once" else f"{last_day:%Y-%m}"
        if self.model is None or self.fitted_for != key:
            train = history[_local_dates(index, tz) < last_day]
            self.model = self._fit(train, tz, step.total_seconds())
            self.fitted_for = key
        _, x, _ = live_features(history, cut, lag + len(target), step.total_seconds(), tz)
        return np.asarray(self.model.forecast(x)[lag:, 3], dtype=np.float64)


def _local_dates(index: pd.DatetimeIndex, tz: str) -> np.ndarray:
    """The local date of every step."""
    return np.asarray(index.tz_convert(tz).date)


def _cache_name(history: pd.Series, spec: LearnedSpec) -> str:
    """The file a model fitted on ``history`` with ``spec`` is kept in."""
    h = hashlib.sha256(repr((spec.train, spec.min_train_days)).encode())
    h.update(np.asarray(history.index.view("int64")).tobytes())
    h.update(history.to_numpy(dtype=np.float64).tobytes())
    return f"lgbm-{h.hexdigest()[:24]}.pkl"


def blend(a: Forecaster, b: Forecaster) -> Forecaster:
    """The mean of two forecasters' points."""

    def run(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> FloatArray:
        return np.asarray(0.5 * (a(history, target, tz) + b(history, target, tz)))

    return run


def learned_forecasters(spec: LearnedSpec) -> dict[str, Forecaster]:
    """``lgbm`` (the model's plan price, :mod:`bessai.market.point`) and ``lgbm-blend`` (its
    mean with ``recent-mean-ar``), for the ``forecasters=`` of
    :func:`bessai.analysis.backtest.backtest`. Each call makes fresh models."""
    model = LearnedForecaster(spec)
    return {"lgbm": model, "lgbm-blend": blend(model, FORECASTERS[BLEND_WITH])}
