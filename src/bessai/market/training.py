"""Fitting the forecast models, with walk-forward validation.

Training stack (scikit-learn, LightGBM): imported by ``bessai forecast train/eval`` and never on
the gateway's prediction path, which runs the exported ONNX models (:mod:`.predictor`).

Walk-forward: the training issue times are cut in time order; the last ``folds`` blocks are
each predicted by a model fitted only on rows whose whole target window ends before the block.
Those out-of-sample predictions give the validation metrics in the model card and fit the band
calibration (:mod:`.bands`); the final model is then fitted on every row.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from bessai.errors import ConfigError, DataError
from bessai.market.bands import (
    QUANTILES,
    BandCalibration,
    apply_calibration,
    calibrate_rows,
    fit_calibration,
)
from bessai.market.features import (
    HISTORY_H,
    ExogInput,
    baseline_point,
    build_features,
    feature_names,
    hour_of,
    issue_positions,
    priced_windows,
    spread_of,
    steps_per_hour,
    with_base,
)
from bessai.market.metrics import forecast_metrics
from bessai.market.point import PlanPoint

FloatArray = npt.NDArray[np.float64]

MODELS: tuple[str, ...] = ("naive", "week-mean", "ridge", "lgbm")

#: The `[train]` extra: what training, export and evaluation import (the gateway needs none).
TRAINING_STACK: tuple[str, ...] = (
    "sklearn",
    "lightgbm",
    "onnx",
    "onnxmltools",
    "skl2onnx",
    "scipy",
)


def need_training_stack(command: str) -> None:
    """Stop ``bessai <command>`` with what to install when the `[train]` extra is missing."""
    missing = []
    for name in TRAINING_STACK:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(
            f"bessai {command} needs the training libraries, missing: {', '.join(missing)}; "
            "install them with: pip install 'bessai[train]'"
        )


@dataclass(frozen=True, slots=True)
class TrainSpec:
    model: str = "lgbm"
    horizon_h: int = 24
    issue_every_h: int = 6  # the gateway re-forecasts during the day, not only at midnight
    folds: int = 4
    validation_share: float = 0.3  # of the issue times, at the end, split into the folds
    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 40
    ridge_alpha: float = 1.0
    # "residual": learn the correction to the week-mean forecast; "level": the price itself.
    target: str = "residual"
    seed: int = 0
    # Exogenous inputs (columns of the `exog` frame, by name) and when their values are known.
    exog: tuple[ExogInput, ...] = ()
    # The price the optimizer plans on (:mod:`.point`); chosen on Crucero 2022, never on 2023.
    plan_on: str = "mean"
    baseline_share: float = 0.5
    # Band edges in units of the last week's spread (:mod:`.bands`), or "none": price units.
    band_scale: str = "std_168h"
    # LightGBM threads. On a shared, loaded machine one thread fits ~4x faster than two
    # (OpenMP threads wait on each other; measured in docs/benchmarks.md, issue 23).
    n_jobs: int = 2

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"forecast: unknown model {self.model!r}; choose one of {MODELS}")
        if not 1 <= self.horizon_h <= 24:
            raise ConfigError("forecast: the horizon must be 1..24 h (lags start at 24 h)")
        if self.issue_every_h < 1 or 24 % self.issue_every_h:
            raise ConfigError("forecast: issue_every_h must divide 24")
        if self.target not in ("residual", "level"):
            raise ConfigError(f"forecast: target must be residual or level, not {self.target!r}")
        if self.folds < 1 or not 0 < self.validation_share < 1:
            raise ConfigError("forecast: need folds >= 1 and 0 < validation_share < 1")
        if self.n_jobs < 1:
            raise ConfigError("forecast: n_jobs must be at least 1")
        if self.band_scale not in ("std_168h", "none"):
            raise ConfigError(
                f"forecast: band_scale must be std_168h or none, not {self.band_scale!r}"
            )
        PlanPoint(self.plan_on, self.baseline_share)  # validates both, even for a baseline
        names = self.exog_names
        if len(set(names)) != len(names):
            raise ConfigError(f"forecast: an exogenous input is named twice in {names}")

    @property
    def exog_names(self) -> tuple[str, ...]:
        """The exogenous inputs' names, in the order of their feature columns."""
        return tuple(e.name for e in self.exog)

    def exog_known_days(self) -> dict[str, int]:
        """Each exogenous input's publication rule (:class:`ExogInput`)."""
        return {e.name: e.known_days for e in self.exog}

    def plan_point(self) -> PlanPoint:
        # The baselines plan on their own forecast: shrinking the seasonal naive toward the
        # week-mean, or the week-mean toward itself, would make them other baselines.
        if self.model in ("naive", "week-mean"):
            return PlanPoint("p50", 0.0)
        return PlanPoint(self.plan_on, self.baseline_share)

    def params(self) -> dict[str, object]:
        return {
            "issue_every_h": self.issue_every_h,
            "folds": self.folds,
            "validation_share": self.validation_share,
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "ridge_alpha": self.ridge_alpha,
            "target": self.target,
            "seed": self.seed,
            "plan_on": self.plan_on,
            "baseline_share": self.baseline_share,
            "band_scale": self.band_scale,
        }


class _Regressor(Protocol):
    def predict(self, x: Any) -> Any: ...


@dataclass(slots=True)
class FittedModel:
    """A fitted model: native estimators, band calibration and what it was fitted on."""

    kind: str
    features: tuple[str, ...]
    estimators: dict[str, _Regressor]  # "p10"/"p50"/"p90" (lgbm) or "point" (ridge)
    calibration: BandCalibration
    target: str = "residual"
    validation: dict[str, float] = field(default_factory=dict)
    point: PlanPoint = field(default_factory=PlanPoint)

    def raw(self, x: npt.NDArray[np.float32]) -> FloatArray:
        """(n, 3) uncalibrated p10/p50/p90 (a point model repeats its forecast)."""
        return raw_quantiles(self.kind, self.estimators, x, self.target)

    def predict(self, x: npt.NDArray[np.float32]) -> FloatArray:
        """(n, 3) calibrated, non-crossing p10/p50/p90."""
        return calibrate_rows(self.raw(x), x, self.calibration)

    def forecast(self, x: npt.NDArray[np.float32]) -> FloatArray:
        """(n, 4): calibrated p10/p50/p90 and the price to plan on."""
        return self.point.with_plan(self.predict(x), x)


def raw_quantiles(
    kind: str, estimators: dict[str, _Regressor], x: npt.NDArray[np.float32], target: str
) -> FloatArray:
    """The p10/p50/p90 predictions of fitted estimators (or a baseline) for feature rows `x`."""
    if kind in ("naive", "week-mean"):
        p = baseline_point(kind, x)
        return np.stack([p, p, p], axis=1)
    if kind == "ridge":
        p = np.asarray(estimators["point"].predict(x), dtype=np.float64).ravel()
        out = np.stack([p, p, p], axis=1)
    else:
        cols = [np.asarray(estimators[f"p{round(q * 100)}"].predict(x)).ravel() for q in QUANTILES]
        out = np.stack(cols, axis=1).astype(np.float64)
    return with_base(out, x, target)


#: Called as training advances: (what was just done, done so far, total).
Progress = Callable[[str, int, int], None]


def estimator_names(model: str) -> tuple[str, ...]:
    """The estimators one fit of ``model`` makes (the baselines make none)."""
    if model == "lgbm":
        return tuple(f"p{round(q * 100)}" for q in QUANTILES)
    return ("point",) if model == "ridge" else ()


def fit_steps(spec: TrainSpec) -> int:
    """How many estimator fits :func:`fit_model` makes: one set per validation fold, one for
    the final model (a progress bar's total)."""
    return (spec.folds + 1) * len(estimator_names(spec.model))


def _fit_estimators(
    spec: TrainSpec,
    x: npt.NDArray[np.float32],
    y: FloatArray,
    fitted: Callable[[str], None] = lambda name: None,
) -> dict[str, _Regressor]:
    """Fit the estimators of ``spec.model``, calling ``fitted(name)`` after each."""
    if spec.model in ("naive", "week-mean"):
        return {}
    if spec.target == "residual":
        y = y - baseline_point("week-mean", x)
    if spec.model == "ridge":
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        pipe = make_pipeline(StandardScaler(), Ridge(alpha=spec.ridge_alpha))
        pipe.fit(x, y)
        fitted("point")
        return {"point": pipe}
    import lightgbm as lgb

    out: dict[str, _Regressor] = {}
    for q in QUANTILES:
        est = lgb.LGBMRegressor(
            objective="quantile",
            alpha=q,
            n_estimators=spec.n_estimators,
            learning_rate=spec.learning_rate,
            num_leaves=spec.num_leaves,
            min_child_samples=spec.min_child_samples,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.9,
            random_state=spec.seed,
            n_jobs=spec.n_jobs,
            verbose=-1,
        )
        est.fit(x, y)
        out[f"p{round(q * 100)}"] = est
        fitted(f"p{round(q * 100)}")
    return out


@dataclass(frozen=True, slots=True)
class TrainingSet:
    x: npt.NDArray[np.float32]
    y: FloatArray
    issue: npt.NDArray[np.int64]  # issue position of each row
    horizon: int
    left_out: int = 0  # issue times left out: their history or target touches a gap


def training_set(
    values: FloatArray,
    index: pd.DatetimeIndex,
    tz: str,
    spec: TrainSpec,
    *,
    exog: pd.DataFrame | None = None,
) -> TrainingSet:
    """Features and targets of a price series for the given forecast horizon."""
    step_s = (index[1] - index[0]).total_seconds()
    sph = steps_per_hour(step_s)
    horizon = spec.horizon_h * sph
    issue = issue_positions(
        index, tz, every_h=spec.issue_every_h, horizon=horizon, first=HISTORY_H * sph
    )
    # A gap the loader left out has no price: rows that would read it are not made.
    priced = priced_windows(values, issue, before=HISTORY_H * sph, after=horizon)
    left_out = int((~priced).sum())
    issue = issue[priced]
    if issue.size == 0:
        raise DataError(
            f"forecast: not enough data to train ({len(values)} steps, {left_out} issue times "
            f"left out for gaps; need more than {HISTORY_H} h of gap-free history plus one "
            "horizon)"
        )
    have = [] if exog is None else [str(c) for c in exog.columns]
    if have != list(spec.exog_names):
        raise DataError(f"forecast: the exogenous columns {have} are not {list(spec.exog_names)}")
    x, target = build_features(
        values, index, issue, horizon, tz, exog=exog, known_days=spec.exog_known_days()
    )
    y = values[target]
    keep = ~np.isnan(y)
    return TrainingSet(x[keep], y[keep], np.repeat(issue, horizon)[keep], horizon, left_out)


def fit_model(
    values: FloatArray,
    index: pd.DatetimeIndex,
    tz: str,
    spec: TrainSpec,
    *,
    exog: pd.DataFrame | None = None,
    data: TrainingSet | None = None,
    on_progress: Progress | None = None,
) -> FittedModel:
    """Fit ``spec.model`` on the whole series, after walk-forward validation on its end.
    ``data`` is the series' training set when the caller built it already; ``on_progress``
    hears of every estimator fitted (:func:`fit_steps` in all)."""
    if data is None:
        data = training_set(values, index, tz, spec, exog=exog)
    done = [0]

    def stage(label: str) -> Callable[[str], None]:
        def fitted(name: str) -> None:
            done[0] += 1
            if on_progress is not None:
                on_progress(f"{label}: {name}", done[0], fit_steps(spec))

        return fitted

    issues = np.unique(data.issue)
    n_val = int(len(issues) * spec.validation_share)
    if n_val < spec.folds:
        raise DataError(
            f"forecast: {len(issues)} issue times are too few for {spec.folds} validation folds"
        )
    blocks = np.array_split(issues[len(issues) - n_val :], spec.folds)
    raws: list[FloatArray] = []
    ys: list[FloatArray] = []
    hours: list[FloatArray] = []
    spreads: list[FloatArray] = []
    for k, block in enumerate(blocks):
        start = int(block[0])
        # Rows whose target window ends before the block: no target leaks into training.
        train = data.issue + data.horizon <= start
        test = np.isin(data.issue, block)
        if train.sum() < 24 * 7:
            raise DataError("forecast: less than a week of training rows before a fold")
        fold = stage(f"validation fold {k + 1}/{spec.folds}")
        est = _fit_estimators(spec, data.x[train], data.y[train], fold)
        raws.append(raw_quantiles(spec.model, est, data.x[test], spec.target))
        ys.append(data.y[test])
        hours.append(hour_of(data.x[test]))
        spreads.append(spread_of(data.x[test]))
    raw = np.concatenate(raws)
    y = np.concatenate(ys)
    hour = np.concatenate(hours)
    spread = np.concatenate(spreads) if spec.band_scale != "none" else None
    # Bands calibrate on the most recent half of the folds: the spread drifts with the regime
    # (Crucero's 2022 was far wilder than 2023), and the next forecasts follow the latest one.
    recent = sum(len(r) for r in raws[: len(raws) // 2])
    calibration = fit_calibration(
        raw[recent:], y[recent:], hour[recent:], None if spread is None else spread[recent:]
    )
    # The validation figures are honest only for the calibration fitted on earlier folds; the
    # card reports the in-sample-calibrated ones and says so (docs/forecast.md).
    q = apply_calibration(raw, hour, calibration, spread)
    validation = forecast_metrics(y, q)
    estimators = _fit_estimators(spec, data.x, data.y, stage("final model"))
    return FittedModel(
        spec.model,
        feature_names(spec.exog_names),
        estimators,
        calibration,
        target=spec.target,
        validation=validation,
        point=spec.plan_point(),
    )
