"""The gateway's forecaster: a model directory run with onnxruntime alone.

No scikit-learn or LightGBM import on this path (a test checks it), so the edge device ships
numpy, pandas, holidays and onnxruntime only. The slow loop calls :meth:`Predictor.predict`
about hourly; within the TTL it gets the cached forecast (trimmed to the steps still ahead)
unless the latest price moved far from the one the forecast was made with.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from bessai.errors import ConfigError, DataError
from bessai.market.bands import BandCalibration, calibrate_rows
from bessai.market.features import (
    HISTORY_H,
    ExogInput,
    baseline_point,
    build_features,
    feature_names,
    steps_per_hour,
    with_base,
)
from bessai.market.point import PlanPoint
from bessai.market.prices import PriceSeries

FloatArray = npt.NDArray[np.float64]

CARD = "card.json"
#: Share of the history grid that may be filled forward before a forecast is refused.
MAX_FILLED_SHARE = 0.1


@dataclass(frozen=True, slots=True)
class Forecast:
    """p10/p50/p90 per step, ``timestamps`` the UTC start of each step; ``point`` is the
    price to plan on (the model card's rule, :mod:`.point`)."""

    timestamps: pd.DatetimeIndex
    p10: FloatArray
    p50: FloatArray
    p90: FloatArray
    point: FloatArray
    issued_at: pd.Timestamp  # start of the first step the forecast was made for
    last_price: float  # the latest price it was made with

    def trimmed(self, start: pd.Timestamp) -> Forecast:
        keep = self.timestamps >= start
        return Forecast(
            self.timestamps[keep],
            self.p10[keep],
            self.p50[keep],
            self.p90[keep],
            self.point[keep],
            self.issued_at,
            self.last_price,
        )

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"p10": self.p10, "p50": self.p50, "p90": self.p90, "point": self.point},
            index=self.timestamps,
        )


class OnnxModel:
    """The models of a directory and its card; ``raw(x)`` gives uncalibrated p10/p50/p90."""

    def __init__(self, model_dir: str | Path) -> None:
        self.dir = Path(model_dir)
        card_path = self.dir / CARD
        try:
            self.card: dict[str, Any] = json.loads(card_path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise DataError(f"{card_path}: cannot read the model card ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{card_path}: not JSON ({exc})") from None
        for key in ("model", "features", "files", "calibration", "step_s", "timezone"):
            if key not in self.card:
                raise DataError(f"{card_path}: the model card lacks {key!r}")
        self.kind: str = self.card["model"]
        self.target: str = self.card.get("train", {}).get("target", "level")
        self.calibration = BandCalibration.from_json(self.card["calibration"])
        self.point = PlanPoint.from_card(self.card, str(card_path))
        self.step_s = float(self.card["step_s"])
        self.timezone: str = self.card["timezone"]
        self.horizon = int(self.card.get("horizon_h", 24)) * steps_per_hour(self.step_s)
        entries = self.card.get("exog", [])
        if not isinstance(entries, list):
            raise DataError(f"{card_path}: 'exog' is not a list")
        self.exog_inputs = tuple(ExogInput.from_json(e, str(card_path)) for e in entries)
        self.exog: tuple[str, ...] = tuple(e.name for e in self.exog_inputs)
        # The ONNX input is a bare matrix: a card from another feature set would be read
        # column-shifted without a word, so refuse it.
        if list(self.card["features"]) != list(feature_names(self.exog)):
            raise DataError(
                f"{card_path}: the model was trained on other features than this version "
                "builds; retrain it with `bessai forecast train`"
            )
        # "mlp": the federated MLP (bessai.federated), a point model like the Ridge.
        if self.kind not in ("naive", "week-mean", "ridge", "lgbm", "mlp"):
            raise DataError(f"{card_path}: unknown model {self.kind!r}")
        self._sessions: dict[str, Any] = {}
        if self.card["files"]:
            self._open_sessions(self.card["files"])

    def describe_exog(self, names: list[str] | None = None) -> str:
        """The exogenous inputs (all, or those named) as `name: dataset key`, for messages."""
        chosen = [e for e in self.exog_inputs if names is None or e.name in names]
        return "; ".join(f"{e.name}: dataset {e.dataset or '?'} key {e.key or '?'}" for e in chosen)

    def _open_sessions(self, files: dict[str, str]) -> None:
        import onnxruntime as ort
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

        # What onnxruntime raises for a file it cannot load (they derive from Exception).
        load_errors = (
            ort_errors.Fail,
            ort_errors.InvalidArgument,
            ort_errors.InvalidGraph,
            ort_errors.InvalidProtobuf,
            ort_errors.NoSuchFile,
            ort_errors.NoModel,
            ort_errors.NotImplemented,
            ort_errors.RuntimeException,
        )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # the gateway's cycle owns the other core
        for key, name in files.items():
            path = self.dir / name
            if not path.is_file():
                raise DataError(f"{self.dir}: model file {name} named by the card is missing")
            try:
                self._sessions[key] = ort.InferenceSession(
                    str(path), opts, providers=["CPUExecutionProvider"]
                )
            except load_errors as exc:
                what = str(exc).split(":")[-1].strip() or type(exc).__name__
                raise DataError(f"{path}: not a model onnxruntime can load ({what})") from None

    def _run(self, key: str, x: npt.NDArray[np.float32]) -> FloatArray:
        out = self._sessions[key].run(None, {"X": x})[0]
        return np.asarray(out, dtype=np.float64).ravel()

    def raw(self, x: npt.NDArray[np.float32]) -> FloatArray:
        if self.kind in ("naive", "week-mean"):
            p = baseline_point(self.kind, x)
            return np.stack([p, p, p], axis=1)
        if self.kind in ("ridge", "mlp"):
            p = self._run("point", x)
            out = np.stack([p, p, p], axis=1)
        else:
            out = np.stack([self._run(k, x) for k in ("p10", "p50", "p90")], axis=1)
        return with_base(out, x, self.target)

    def quantiles(self, x: npt.NDArray[np.float32]) -> FloatArray:
        """(n, 3) calibrated, non-crossing p10/p50/p90."""
        return calibrate_rows(self.raw(x), x, self.calibration)

    def with_point(self, x: npt.NDArray[np.float32]) -> FloatArray:
        """(n, 4): calibrated p10/p50/p90 and the price to plan on."""
        return self.point.with_plan(self.quantiles(x), x)

    def forecast(
        self,
        history: pd.Series,
        start: pd.Timestamp,
        horizon: int | None = None,
        exog: pd.DataFrame | None = None,
    ) -> tuple[pd.DatetimeIndex, FloatArray, float]:
        """p10/p50/p90 and the plan price, (n, 4), for ``horizon`` steps from ``start`` (UTC,
        on the step grid) from the prices before ``start``; also the latest price used."""
        missing = [n for n in self.exog if exog is None or n not in exog.columns]
        if missing:
            raise DataError(
                f"forecast: the model needs the exogenous input(s) {', '.join(missing)} "
                f"({self.describe_exog(missing)})"
            )
        target, x, last = live_features(
            history,
            start,
            self.horizon if horizon is None else horizon,
            self.step_s,
            self.timezone,
            exog=None if exog is None or not self.exog else exog[list(self.exog)],
            known_days={e.name: e.known_days for e in self.exog_inputs},
        )
        return target, self.with_point(x), last


def live_features(
    history: pd.Series,
    start: pd.Timestamp,
    horizon: int,
    step_s: float,
    tz: str,
    exog: pd.DataFrame | None = None,
    *,
    known_days: dict[str, int] | None = None,
) -> tuple[pd.DatetimeIndex, npt.NDArray[np.float32], float]:
    """Feature rows for ``horizon`` steps from ``start`` from the prices before it (laid on a
    regular grid, short gaps filled forward), the target steps and the latest price used.
    ``exog`` may hold values of any time: only those published by ``start`` are read."""
    step = pd.Timedelta(seconds=step_s)
    sph = steps_per_hour(step_s)
    grid_len = (HISTORY_H + 24) * sph
    grid = pd.date_range(start - grid_len * step, periods=grid_len, freq=step)
    hist = history[history.index < start]
    if hist.empty:
        raise DataError(f"forecast: no price before {start}")
    on_grid = hist.reindex(grid)
    missing = int(on_grid.isna().sum())
    if missing > MAX_FILLED_SHARE * grid_len or np.isnan(on_grid.iloc[0]):
        raise DataError(
            f"forecast: the history lacks {missing} of the {grid_len} steps of the "
            f"{HISTORY_H + 24} h before {start} (step {step}); it needs them all but "
            f"{MAX_FILLED_SHARE:.0%}"
        )
    on_grid = on_grid.ffill()
    target = pd.date_range(start, periods=horizon, freq=step)
    index = grid.append(target)
    assert isinstance(index, pd.DatetimeIndex)
    values = np.concatenate([on_grid.to_numpy(dtype=np.float64), np.full(horizon, np.nan)])
    ex = None if exog is None else exog.reindex(index)
    x, _ = build_features(
        values, index, np.array([grid_len]), horizon, tz, exog=ex, known_days=known_days
    )
    return target, x, float(values[grid_len - 1])


def _mismatch(card: dict[str, Any], unit: str | None, step_s: float | None) -> str | None:
    """Why prices in ``unit`` with a step of ``step_s`` do not suit the model (None: they do)."""
    if unit is not None and card.get("unit") != unit:
        trained = card.get("unit")
        return f"the model was trained on {trained}, the prices are in {unit}; convert them first"
    if step_s is not None and float(str(card.get("step_s"))) != step_s:
        return (
            f"the model has a step of {card.get('step_s')} s, the prices {step_s:g} s "
            "(use --step-min)"
        )
    return None


def check_prices(card: dict[str, Any], series: PriceSeries, model_dir: Path) -> None:
    """Refuse prices in another unit or step than the model in ``model_dir`` was trained on."""
    problem = _mismatch(card, series.unit, series.step.total_seconds())
    if problem is not None:
        raise DataError(f"{model_dir}: {problem}")


def check_model_dir(
    path: Path, prices_unit: str | None = None, step_s: float | None = None
) -> None:
    """Check that ``path`` is a model directory the gateway can run on prices in
    ``prices_unit`` with steps of ``step_s`` seconds (None: not checked), the check `bessai
    forecast predict` makes: the card is readable and complete, every model file loads, the
    features are this version's, and the unit and step match. Raises :class:`ConfigError`
    with one line naming the directory and the problem."""
    if not path.is_dir():
        raise ConfigError(f"{path}: no such model directory (write one with bessai forecast train)")
    try:
        model = OnnxModel(path)
    except DataError as exc:
        raise ConfigError(str(exc)) from None
    problem = _mismatch(model.card, prices_unit, step_s)
    if problem is not None:
        raise ConfigError(f"{path}: {problem}")


def check_zone(card: dict[str, Any], series: PriceSeries, model_dir: Path) -> None:
    """Refuse prices whose market days are cut in another time zone than the model's: its
    calendar features and the evaluation's days would disagree."""
    if card.get("timezone") != series.timezone:
        generic = series.report.format == "generic"
        hint = f"; give --tz {card.get('timezone')} for this generic file" if generic else ""
        raise DataError(
            f"{model_dir}: the model's market days are in {card.get('timezone')}, the prices' "
            f"in {series.timezone}{hint}"
        )


class Predictor:
    """``Predictor(model_dir).predict(history, now)``: the next horizon with bands.

    ``history`` is a price series on a UTC index (step starts), in the unit the model was
    trained on. The cache holds one forecast for ``ttl_s`` seconds; a newer price that differs
    from the one the forecast used by more than ``max(change_abs, change_rel * |that price|)``
    makes a new one at once (a scarcity event should not wait an hour).
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        ttl_s: float = 3600.0,
        change_abs: float = 20.0,
        change_rel: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = OnnxModel(model_dir)
        self.ttl_s = ttl_s
        self.change_abs = change_abs
        self.change_rel = change_rel
        self._clock = clock
        self._cached: Forecast | None = None
        self._cached_at = 0.0
        self.computed = 0  # forecasts actually run (not served from the cache)

    @property
    def card(self) -> dict[str, Any]:
        return self.model.card

    def _fresh(self, start: pd.Timestamp, last_price: float) -> bool:
        c = self._cached
        if c is None or self._clock() - self._cached_at > self.ttl_s:
            return False
        if start < c.issued_at or start >= c.timestamps[-1]:
            return False
        limit = max(self.change_abs, self.change_rel * abs(c.last_price))
        return abs(last_price - c.last_price) <= limit

    def predict(
        self, history: pd.Series, now: datetime, exog: pd.DataFrame | None = None
    ) -> Forecast:
        ts = pd.Timestamp(now)
        if ts.tzinfo is None:
            raise DataError("forecast: 'now' must be timezone-aware")
        start = ts.tz_convert("UTC").floor(pd.Timedelta(seconds=self.model.step_s))
        before = history[history.index < start]
        if before.empty:
            raise DataError(f"forecast: no price before {start}")
        last = float(before.iloc[-1])
        if self._fresh(start, last):
            assert self._cached is not None
            return self._cached.trimmed(start)
        target, q, used = self.model.forecast(history, start, exog=exog)
        self._cached = Forecast(target, q[:, 0], q[:, 1], q[:, 2], q[:, 3], start, used)
        self._cached_at = self._clock()
        self.computed += 1
        return self._cached
