"""Judging a forecaster by its errors, its bands and the revenue it earns.

Every strategy runs through the optimizer's day-ahead back-test (forecast each market day from
the prices before it, plan, settle at real prices); the forecasts it makes are recorded on the
way, so the error figures and the capture ratio describe the very same forecasts. The naive
baselines get the back-test's own empirical bands (last seven days at the same hour).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from bessai.analysis.backtest import backtest
from bessai.analysis.result import BacktestResult
from bessai.errors import DataError
from bessai.market.bands import Bands
from bessai.market.baselines import FORECASTERS, BandForecaster, Forecaster, empirical_bands
from bessai.market.days import FORECAST_HISTORY_H
from bessai.market.features import HISTORY_H, steps_per_hour
from bessai.market.metrics import forecast_metrics, within_day_tau
from bessai.market.predictor import OnnxModel, live_features
from bessai.market.prices import PriceSeries
from bessai.market.training import FittedModel, TrainSpec, fit_model
from bessai.optimize import Risk, StorageSpec

FloatArray = npt.NDArray[np.float64]
#: Quantile forecaster: (history, target steps, tz) -> (n, 4) p10/p50/p90 and the price the
#: optimizer plans on.
QuantileForecaster = Callable[[pd.Series, pd.DatetimeIndex, str], FloatArray]
BASELINES: tuple[str, ...] = ("persistence", "week-mean")


def onnx_forecaster(model: OnnxModel, exog: pd.DataFrame | None = None) -> QuantileForecaster:
    """A back-test forecaster that predicts with an exported model's ONNX runtime; ``exog``
    holds the model's exogenous inputs over the whole period (each forecast reads only what
    is published by its issue time)."""

    def run(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> FloatArray:
        return model.forecast(history, target[0], horizon=len(target), exog=exog)[1]

    return run


def refit_forecaster(
    spec: TrainSpec,
    step_s: float,
    *,
    min_train_days: int = 21,
    exog: pd.DataFrame | None = None,
) -> QuantileForecaster:
    """Walk-forward with refits: at the first forecast of each local month, fit ``spec`` on
    every price before it (expanding window), then forecast the month with that model.
    ``exog``: the exogenous inputs of ``spec`` over the whole period."""
    state: dict[str, Any] = {"month": None, "model": None}
    sph = steps_per_hour(step_s)

    def run(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> FloatArray:
        month = target[0].tz_convert(tz).strftime("%Y-%m")
        if state["month"] != month:
            if len(history) < (min_train_days * 24 + HISTORY_H) * sph:
                raise DataError(
                    f"forecast eval: {len(history) // (24 * sph)} days of history before "
                    f"{month}; refitting needs {min_train_days} days plus a week of lags"
                )
            index = history.index
            assert isinstance(index, pd.DatetimeIndex)
            past = None if exog is None else exog.reindex(index)
            values = history.to_numpy(dtype=np.float64)
            state["model"] = fit_model(values, index, tz, spec, exog=past)
            state["month"] = month
        model: FittedModel = state["model"]
        _, x, _ = live_features(
            history, target[0], len(target), step_s, tz, exog,
            known_days=spec.exog_known_days(),
        )  # fmt: skip
        return model.forecast(x)

    return run


def baseline_forecaster(name: str) -> QuantileForecaster:
    """A back-test forecaster from a baseline's name (persistence, week-mean, perfect)."""
    point_fn = FORECASTERS[name]

    def run(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> FloatArray:
        point = point_fn(history, target, tz)
        b = empirical_bands(history, target, tz, point)
        return np.stack([b.p10, b.p50, b.p90, point], axis=1)

    return run


@dataclass(frozen=True, slots=True)
class StrategyResult:
    name: str
    metrics: dict[str, float]
    backtest: BacktestResult

    def row(self) -> dict[str, object]:
        bt = self.backtest
        return {
            "strategy": self.name,
            **{k: round(v, 4) for k, v in self.metrics.items()},
            "net_revenue": round(bt.net_revenue, 2),
            "perfect_daily_net": round(bt.perfect_daily_net, 2),
            "capture_vs_daily_perfect": round(bt.capture_daily, 4),
            "equivalent_full_cycles": round(bt.equivalent_full_cycles, 1),
            "days": len(bt.days),
        }


def run_strategy(
    series: PriceSeries,
    name: str,
    quantiles: QuantileForecaster,
    storage: StorageSpec,
    *,
    first_day: date | None,
    last_day: date | None,
    on_day: Callable[[int, int], None] | None = None,
    risk: Risk | None = None,
    min_history_h: float | None = FORECAST_HISTORY_H,
) -> StrategyResult:
    """Back-test one strategy of a quantile forecaster over the days given."""
    recorded: list[tuple[pd.DatetimeIndex, FloatArray]] = []

    def point(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> FloatArray:
        q = quantiles(history, target, tz)
        recorded.append((target, q[:, :3]))
        return np.asarray(q[:, 3], dtype=np.float64)

    def bands(history: pd.Series, target: pd.DatetimeIndex, tz: str, planned: FloatArray) -> Bands:
        # The back-test asks for the bands right after the forecast of the same day.
        steps, q = recorded[-1]
        if not steps.equals(target):
            raise AssertionError("back-test asked for bands of another day than it forecast")
        return Bands(p10=q[:, 0], p50=q[:, 1], p90=q[:, 2])

    forecasters: dict[str, Forecaster] = {name: point}
    band_forecasters: dict[str, BandForecaster] = {name: bands}
    bt = backtest(
        series,
        name,
        storage,
        first_day=first_day,
        last_day=last_day,
        forecasters=forecasters,
        on_day=on_day,
        risk=risk,
        band_forecasters=band_forecasters,
        min_history_h=min_history_h,
    )
    actual = series.prices
    ys: list[FloatArray] = []
    days: list[tuple[FloatArray, FloatArray]] = []
    for target, q in recorded:
        y = actual.reindex(target).to_numpy(dtype=np.float64)
        ys.append(y)
        days.append((q[:, 1], y))
    y_all = np.concatenate(ys)
    q_all = np.concatenate([q for _, q in recorded])
    metrics = forecast_metrics(y_all, q_all)
    metrics["kendall_tau_within_day"] = within_day_tau(days)
    return StrategyResult(name, metrics, bt)


def evaluate(
    series: PriceSeries,
    model_name: str,
    model: QuantileForecaster,
    storage: StorageSpec,
    *,
    first_day: date | None,
    last_day: date | None,
    on_day: Callable[[str, int, int], None] | None = None,
    risk: Risk | None = None,
) -> list[StrategyResult]:
    """The model and the persistence and week-mean baselines over the same days; with
    ``risk`` every strategy plans in the risk-aware mode on its own bands (the model's
    calibrated ones, the baselines' empirical ones). Every strategy starts on the first day
    with the model's full history before it (:data:`FORECAST_HISTORY_H`), and skips the days
    a gap in the prices touches."""
    out = []
    strategies: list[tuple[str, QuantileForecaster]] = [(model_name, model)]
    strategies += [(b, baseline_forecaster(b)) for b in BASELINES]
    for name, fc in strategies:

        def progress(done: int, total: int, name: str = name) -> None:
            if on_day is not None:
                on_day(name, done, total)

        out.append(
            run_strategy(
                series,
                name,
                fc,
                storage,
                first_day=first_day,
                last_day=last_day,
                on_day=progress,
                risk=risk,
            )
        )
    return out
