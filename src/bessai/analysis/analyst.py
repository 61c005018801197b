"""The analyst's questions on a price series: what would this battery have planned and earned on
a day, over a range of days, and at other sizes (docs/analyst.md).

Every answer is the day-ahead back-test of :mod:`.backtest` (so its figures equal `bessai
backtest` for the same inputs) with what the page shows beside it: the forecast's bands, the
plan each day executed with its per-slot reasons, and the KPIs. Pure computation: the API
(`bessai.api.analyst`) owns the catalog of series, the cache and the progress.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from bessai.analysis.backtest import SocTarget, backtest, strategy_of
from bessai.analysis.evaluate import QuantileForecaster, baseline_forecaster, onnx_forecaster
from bessai.analysis.result import BacktestResult
from bessai.analysis.settle import SETTLEMENTS
from bessai.errors import ConfigError
from bessai.market.bands import Bands
from bessai.market.baselines import FORECASTERS, BandForecaster, Forecaster
from bessai.market.days import FORECAST_HISTORY_H
from bessai.market.predictor import OnnxModel, check_model_dir
from bessai.market.prices import PriceSeries
from bessai.optimize import Schedule, StorageSpec
from bessai.optimize.storage import FloatArray

#: The strategies every series offers; trained models add `model:<name>`.
BUILTIN_FORECASTERS: tuple[str, ...] = ("perfect", "week-mean", "persistence", "rule")
MODEL_PREFIX = "model:"
_ACTIVE_KW = 1e-6

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Study:
    """What an analyst asks about one series: the forecaster, the battery, the SOC the first
    plan starts from and each plan must end at (None: the start), the market days (local,
    inclusive) and who executes the plans (`plant` or `ideal`)."""

    forecaster: str
    storage: StorageSpec
    first_day: date
    last_day: date
    soc_initial_pct: float = 50.0
    soc_final_pct: float | None = None
    settlement: str = "plant"

    def __post_init__(self) -> None:
        if self.last_day < self.first_day:
            raise ConfigError(f"last day {self.last_day} is before the first {self.first_day}")
        if self.settlement not in SETTLEMENTS:
            raise ConfigError(
                f"settlement {self.settlement!r}; choose one of {', '.join(SETTLEMENTS)}"
            )
        for name, value in (("soc_initial_pct", self.soc_initial_pct),
                            ("soc_final_pct", self.soc_final_pct)):  # fmt: skip
            if value is not None and not 0.0 <= value <= 100.0:
                raise ConfigError(f"{name}: {value:g} % is not a state of charge (0..100 %)")

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def sized(self, power_kw: float, capacity_kwh: float) -> Study:
        """The same study with another battery size (everything else kept)."""
        storage = replace(self.storage, max_charge_kw=power_kw, capacity_kwh=capacity_kwh)
        return replace(self, storage=storage)


@dataclass(frozen=True, slots=True)
class Models:
    """Trained forecasters (`bessai forecast train` directories) by name."""

    dirs: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def found(cls, roots: list[Path]) -> Models:
        """Every model directory (one holding a `card.json`) at or one level under ``roots``,
        named after its folder."""
        dirs: dict[str, Path] = {}
        for root in roots:
            candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
            for path in candidates:
                if (path / "card.json").is_file():
                    dirs.setdefault(path.name, path)
        return cls(dirs)

    def names(self) -> list[str]:
        return [MODEL_PREFIX + name for name in sorted(self.dirs)]

    def version(self, forecaster: str) -> str | None:
        """When the model's card was last written (None: not a model), so a retrained model
        does not answer from a result cached for the old one."""
        path = self.dirs.get(forecaster.removeprefix(MODEL_PREFIX))
        if not forecaster.startswith(MODEL_PREFIX) or path is None:
            return None
        card = path / "card.json"
        return str(card.stat().st_mtime_ns) if card.is_file() else None

    def quantiles(self, forecaster: str, series: PriceSeries) -> QuantileForecaster:
        """The model called ``model:<name>``, checked against the series' unit and step."""
        name = forecaster.removeprefix(MODEL_PREFIX)
        path = self.dirs.get(name)
        if path is None:
            known = ", ".join(self.names()) or "none"
            raise ConfigError(f"unknown forecaster {forecaster!r}; models found: {known}")
        check_model_dir(path, series.unit, series.step.total_seconds())
        model = OnnxModel(path)
        if model.exog:
            raise ConfigError(
                f"{forecaster}: the model reads exogenous inputs ({model.describe_exog()}), "
                "which the analyst does not feed; judge it with bessai forecast eval --exog"
            )
        return onnx_forecaster(model)


@dataclass(slots=True)
class _Recorder:
    """Wraps a quantile forecaster for the back-test and keeps each day's bands."""

    quantiles: QuantileForecaster
    days: list[tuple[pd.DatetimeIndex, FloatArray]] = field(default_factory=list)

    def point(self, history: pd.Series, target: pd.DatetimeIndex, tz: str) -> FloatArray:
        q = self.quantiles(history, target, tz)
        self.days.append((target, q))
        return np.asarray(q[:, 3], dtype=np.float64)

    def bands(self, history: pd.Series, target: pd.DatetimeIndex, tz: str, p: FloatArray) -> Bands:
        _, q = self.days[-1]
        return Bands(p10=q[:, 0], p50=q[:, 1], p90=q[:, 2])


def _point_only(name: str) -> QuantileForecaster:
    """A baseline without its bands (NaN): the empirical quantiles cost twice the forecast,
    and a long back-test or a sweep does not show them."""
    point_fn = FORECASTERS[name]

    def run(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> FloatArray:
        point = point_fn(history, target, tz)
        nan = np.full(len(point), np.nan)
        return np.stack([nan, point, nan, point], axis=1)

    return run


def _memoized(quantiles: QuantileForecaster) -> QuantileForecaster:
    """The same forecaster, each day's forecast computed once: a sweep asks for the same days
    at every size (the forecast does not depend on the battery)."""
    memo: dict[pd.Timestamp, FloatArray] = {}

    def run(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> FloatArray:
        if target[0] not in memo:
            memo[target[0]] = quantiles(history, target, tz)
        return memo[target[0]]

    return run


def _quantiles(
    forecaster: str, series: PriceSeries, models: Models, bands: bool
) -> QuantileForecaster | None:
    """The forecaster called ``forecaster`` (None: perfect foresight has no forecast); without
    ``bands`` a baseline gives its point forecast only."""
    if forecaster == "perfect":
        return None
    if forecaster.startswith(MODEL_PREFIX):
        return models.quantiles(forecaster, series)
    base = "week-mean" if forecaster == "rule" else forecaster
    if base not in ("week-mean", "persistence"):
        known = ", ".join([*BUILTIN_FORECASTERS, *models.names()])
        raise ConfigError(f"unknown forecaster {forecaster!r}; choose one of {known}")
    return baseline_forecaster(base) if bands else _point_only(base)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A back-test as the analyst reads it: the result, and each scored day's bands (p10,
    p50, p90, plan price per step; None for perfect foresight)."""

    result: BacktestResult
    bands: tuple[tuple[pd.DatetimeIndex, FloatArray], ...] | None


def run_study(
    series: PriceSeries,
    study: Study,
    models: Models,
    on_day: Progress | None = None,
    *,
    bands: bool = True,
    quantiles: QuantileForecaster | None = None,
) -> Outcome:
    """The back-test of ``study`` (`bessai backtest` with the same options), recording the
    forecaster's bands (a baseline's only with ``bands``; a trained model always has them).
    ``quantiles`` replaces the forecaster the study names (a sweep's memoized one)."""
    if quantiles is None:
        quantiles = _quantiles(study.forecaster, series, models, bands)
    recorder = None if quantiles is None else _Recorder(quantiles)
    forecasters: dict[str, Forecaster] | None = None
    band_forecasters: dict[str, BandForecaster] | None = None
    history_h: float | None = None
    if recorder is not None:
        # The rule engine plans on the week-mean forecast, which the back-test looks up as such.
        key = "week-mean" if study.forecaster == "rule" else study.forecaster
        forecasters = {key: recorder.point}
        band_forecasters = {study.forecaster: recorder.bands}
        if study.forecaster.startswith(MODEL_PREFIX):
            history_h = FORECAST_HISTORY_H  # the model's lags, as `bessai forecast eval`
    result = backtest(
        series,
        study.forecaster,
        study.storage,
        soc_initial_pct=study.soc_initial_pct,
        soc_final_pct=study.soc_final_pct,
        first_day=study.first_day,
        last_day=study.last_day,
        settle=SETTLEMENTS[study.settlement],
        on_day=on_day,
        forecasters=forecasters,
        band_forecasters=band_forecasters,
        min_history_h=history_h,
    )
    return Outcome(result, None if recorder is None else tuple(recorder.days))


def day_plan(series: PriceSeries, study: Study, outcome: Outcome) -> Schedule:
    """The plan the back-test executed on its first day, with a reason per slot: the same
    forecast, storage and SOC give the same plan (the solver is deterministic)."""
    result = outcome.result
    if outcome.bands is None:
        forecast = result.prices[: _day_steps(result)]
    else:
        forecast = np.asarray(outcome.bands[0][1][:, 3], dtype=np.float64)
    strategy = strategy_of(study.forecaster, {study.forecaster: _no_forecast}, None, None)
    final = study.soc_initial_pct if study.soc_final_pct is None else study.soc_final_pct
    target = SocTarget(study.soc_initial_pct, final, series.step_h)
    return strategy.plan(forecast, None, study.storage, target)


def _no_forecast(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> FloatArray:
    raise AssertionError("the day's plan is made on the recorded forecast")


def _day_steps(result: BacktestResult) -> int:
    """Steps of the result's first market day."""
    local = result.index.tz_convert(result.timezone)
    return int(np.sum(local.date == result.first_day))


def kpis(result: BacktestResult) -> dict[str, float | int | None]:
    """The figures the page shows for a back-test: net revenue, wear, the spread captured
    (energy-weighted real price sold at minus bought at), active hours, equivalent full cycles
    and the capture of daily perfect foresight."""
    c, d, p = result.charge_kw, result.discharge_kw, result.prices
    step_h = (result.index[1] - result.index[0]).total_seconds() / 3600 if len(p) > 1 else 1.0
    bought, sold = float(np.sum(c)), float(np.sum(d))
    spread = None
    if bought > _ACTIVE_KW and sold > _ACTIVE_KW:
        spread = float(np.sum(p * d) / sold - np.sum(p * c) / bought)
    active = int(np.sum((c > _ACTIVE_KW) | (d > _ACTIVE_KW)))
    capture = result.capture_daily
    return {
        "days": len(result.days),
        "revenue": round(result.revenue, 2),
        "wear_cost": round(result.degradation_cost, 2),
        "net_revenue": round(result.net_revenue, 2),
        "perfect_daily_net": round(result.perfect_daily_net, 2),
        "whole_period_net": round(result.whole_period_net, 2),
        "capture_vs_daily_perfect": None if np.isnan(capture) else round(capture, 4),
        "spread_captured": None if spread is None else round(spread, 2),
        "active_hours": round(active * step_h, 2),
        "equivalent_full_cycles": round(result.equivalent_full_cycles, 2),
        "charged_kwh": round(bought * step_h, 1),
        "discharged_kwh": round(sold * step_h, 1),
    }


def mean_confidence(outcome: Outcome) -> float | None:
    """The bands' mean confidence over the scored days (None without bands)."""
    if not outcome.bands:
        return None
    q = np.concatenate([q for _, q in outcome.bands])
    if np.isnan(q[:, 0]).all():
        return None
    bands = Bands(p10=q[:, 0], p50=q[:, 1], p90=q[:, 2])
    return round(float(np.mean(bands.confidence())), 4)


@dataclass(frozen=True, slots=True)
class Size:
    """One battery size of a sweep."""

    power_kw: float
    capacity_kwh: float


def sweep(
    series: PriceSeries,
    study: Study,
    sizes: list[Size],
    models: Models,
    on_day: Progress | None = None,
) -> list[tuple[Size, BacktestResult]]:
    """The study's back-test at each size (the same days, forecaster and SOC plan);
    ``on_day(done, total)`` counts days over all sizes."""
    out: list[tuple[Size, BacktestResult]] = []
    forecast = _quantiles(study.forecaster, series, models, bands=False)
    shared = None if forecast is None else _memoized(forecast)
    for k, size in enumerate(sizes):

        def progress(done: int, total: int, k: int = k) -> None:
            if on_day is not None:
                on_day(k * total + done, len(sizes) * total)

        sized = study.sized(size.power_kw, size.capacity_kwh)
        outcome = run_study(series, sized, models, progress, bands=False, quantiles=shared)
        out.append((size, outcome.result))
    return out
