"""Forecaster figures: training time, and the gateway predictor's latency (onnxruntime, one
thread, cache off) for the 24 h hourly horizon and the 96-step 15-minute horizon, per model.

Models are trained here on Crucero 2022 (hourly, and upsampled to 15 minutes) so the figures
do not depend on a model directory lying around; the accuracy figures are in
docs/benchmarks.md ("CMg forecaster")."""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import DATA
from bessai.market.export import write_model_dir
from bessai.market.predictor import Predictor
from bessai.market.prices import PriceSeries, load_prices
from bessai.market.training import TrainSpec, fit_model, training_set

REPEATS = 50


def _one(series: PriceSeries, model: str, workdir: Path) -> dict[str, object]:
    spec = TrainSpec(model=model)
    started = time.perf_counter()
    fitted = fit_model(series.values, series.index, series.timezone, spec)
    train_s = time.perf_counter() - started
    data = training_set(series.values, series.index, series.timezone, spec)
    out = workdir / f"{model}-{int(series.step.total_seconds())}"
    meta = {
        "node": series.node,
        "unit": series.unit,
        "timezone": series.timezone,
        "step_s": series.step.total_seconds(),
    }
    card = write_model_dir(
        fitted, spec, out, x_check=data.x[-5000:], y_check=data.y[-5000:], meta=meta
    )
    predictor = Predictor(out, ttl_s=0.0)  # every call computes
    now = series.end - timedelta(days=1)
    predictor.predict(series.prices, now)  # first call pays for lazy initialisation
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        fc = predictor.predict(series.prices, now)
        times.append(time.perf_counter() - started)
    return {
        "model": model,
        "step_min": series.step.total_seconds() / 60,
        "horizon_steps": len(fc.timestamps),
        "training_rows": len(data.y),
        "train_s_with_walk_forward": round(train_s, 2),
        "predict_median_ms": round(statistics.median(times) * 1000, 2),
        "predict_p95_ms": round(sorted(times)[int(0.95 * REPEATS) - 1] * 1000, 2),
        "onnx_max_abs_diff": card["onnx"],
        "int8": card["int8"],
    }


def run() -> dict[str, object]:
    crucero = load_prices(DATA / "cen_cmg_crucero220_2019-2023.csv")
    year = crucero.between(datetime(2022, 1, 1, 3, tzinfo=UTC), datetime(2023, 1, 1, 3, tzinfo=UTC))
    fine = year.resample(timedelta(minutes=15))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for series in (year, fine):
            for model in ("week-mean", "ridge", "lgbm"):
                rows.append(_one(series, model, Path(tmp)))
    return {"data": "Crucero 2022", "repeats": REPEATS, "models": rows}
