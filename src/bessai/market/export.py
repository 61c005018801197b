"""Writing a model directory: ONNX models, int8 variants where they keep accuracy, model card.

Layout (docs/forecast.md)::

    card.json            what the predictor needs (features, horizon, calibration, files) and
                         what a reader wants (data range, metrics, versions)
    p10.onnx p50.onnx p90.onnx     LightGBM quantile models (model "lgbm")
    point.onnx                     Ridge (model "ridge"); naive/week-mean need no file
    point.int8.onnx                the int8 Ridge, only when it keeps accuracy

Training stack only: the predictor reads the directory with onnxruntime alone.
"""

from __future__ import annotations

import json
import logging
import platform
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bessai.market.features import baseline_point
from bessai.market.training import FittedModel, TrainSpec

CARD = "card.json"
CARD_FORMAT = 1
#: ONNX runs the trees in float32; a split threshold can round to the other side of a value,
#: so the tolerance is on the price scale, not machine epsilon (USD/MWh).
ONNX_TOLERANCE = 0.05
#: int8 is kept only if it costs less than this share of the float model's MAE and its mean
#: distance from the float model's forecast is below the same share of that MAE.
INT8_MAX_MAE_LOSS = 0.01
OPSET = 15
_VERSIONED = ("numpy", "pandas", "scikit-learn", "lightgbm", "onnx", "onnxruntime",
              "onnxmltools", "skl2onnx", "holidays")  # fmt: skip


def library_versions() -> dict[str, str]:
    """The versions of the libraries a model was trained and exported with, for its card."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def _to_onnx(fitted: FittedModel, key: str, n_features: int) -> Any:
    est = fitted.estimators[key]
    if fitted.kind == "lgbm":
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        return convert_lightgbm(
            est, initial_types=[("X", FloatTensorType([None, n_features]))], target_opset=OPSET
        )
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType as SkFloat

    return convert_sklearn(
        est, initial_types=[("X", SkFloat([None, n_features]))], target_opset=OPSET
    )


def _run(model_bytes: bytes, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    import onnxruntime as ort

    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {"X": x})[0], dtype=np.float64).ravel()


def _ridge_as_matmul(fitted: FittedModel, n_features: int) -> Any:
    """The Ridge pipeline folded into one MatMul + Add: skl2onnx's LinearRegressor has no int8
    kernel, a MatMul does (onnxruntime's dynamic quantization)."""
    pipe: Any = fitted.estimators["point"]
    scaler, ridge = pipe[0], pipe[-1]
    w = ridge.coef_ / scaler.scale_
    b = float(ridge.intercept_ - np.sum(ridge.coef_ * scaler.mean_ / scaler.scale_))
    return linear_onnx(np.asarray(w, dtype=np.float64), b, n_features)


def linear_onnx(weights: npt.NDArray[np.float64], intercept: float, n_features: int) -> Any:
    """``X @ weights + intercept`` as an ONNX model (input ``X``, float32), the form of a
    ``point.onnx`` the predictor runs (also the federated Ridge's, :mod:`bessai.federated`)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["XW"]),
            helper.make_node("Add", ["XW", "B"], ["variable"]),
        ],
        "ridge",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
        [
            numpy_helper.from_array(weights.reshape(-1, 1).astype(np.float32), "W"),
            numpy_helper.from_array(np.array([intercept], dtype=np.float32), "B"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def _quantize(model: Any, workdir: Path) -> bytes:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = workdir / ".float.tmp.onnx"
    dst = workdir / ".int8.tmp.onnx"
    src.write_bytes(model.SerializeToString())
    try:
        # onnxruntime logs a pre-processing hint on the root logger for every call.
        logging.disable(logging.WARNING)
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        return dst.read_bytes()
    finally:
        logging.disable(logging.NOTSET)
        src.unlink(missing_ok=True)
        dst.unlink(missing_ok=True)


def write_model_dir(
    fitted: FittedModel,
    spec: TrainSpec,
    out: Path,
    *,
    x_check: npt.NDArray[np.float32],
    y_check: npt.NDArray[np.float64],
    meta: dict[str, object],
) -> dict[str, object]:
    """Export ``fitted`` into ``out`` and write the card. ``x_check``/``y_check`` (held-out or
    training rows) measure the ONNX-vs-native difference and the int8 accuracy loss."""
    out.mkdir(parents=True, exist_ok=True)
    n_features = len(fitted.features)
    files: dict[str, str] = {}
    onnx_diff = 0.0
    int8: dict[str, object] = {"applied": False}
    for key in fitted.estimators:
        model = _to_onnx(fitted, key, n_features)
        data = model.SerializeToString()
        native = np.asarray(fitted.estimators[key].predict(x_check), dtype=np.float64).ravel()
        onnx_diff = max(onnx_diff, float(np.max(np.abs(_run(data, x_check) - native))))
        path = out / f"{key}.onnx"
        path.write_bytes(data)
        files[key] = path.name
    if fitted.kind == "lgbm":
        int8["reason"] = (
            "TreeEnsembleRegressor has no int8 kernel in onnxruntime; quantization leaves the "
            "trees in float32, so the float models are shipped"
        )
    elif fitted.kind == "ridge":
        native = np.asarray(fitted.estimators["point"].predict(x_check), dtype=np.float64)
        q_bytes = _quantize(_ridge_as_matmul(fitted, n_features), out)
        q_pred = _run(q_bytes, x_check)
        base = baseline_point("week-mean", x_check) if fitted.target == "residual" else 0.0
        mae_float = float(np.mean(np.abs(y_check - native.ravel() - base)))
        mae_int8 = float(np.mean(np.abs(y_check - q_pred - base)))
        loss = (mae_int8 - mae_float) / mae_float if mae_float > 0 else 0.0
        drift = float(np.mean(np.abs(q_pred - native.ravel())))
        # A lower int8 MAE can be luck; it must also stay close to the float model it replaces.
        keep = loss <= INT8_MAX_MAE_LOSS and drift <= INT8_MAX_MAE_LOSS * mae_float
        int8 = {
            "applied": keep,
            "mae_float": round(mae_float, 4),
            "mae_int8": round(mae_int8, 4),
            "mae_loss_share": round(loss, 5),
            "mean_abs_diff": round(drift, 4),
            "max_abs_diff": round(float(np.max(np.abs(q_pred - native.ravel()))), 4),
            "threshold_share": INT8_MAX_MAE_LOSS,
        }
        if keep:
            (out / "point.int8.onnx").write_bytes(q_bytes)
            files["point"] = "point.int8.onnx"
    else:
        int8["reason"] = "no model file: the baseline is computed from the features"
    card: dict[str, object] = {
        "format": CARD_FORMAT,
        "model": fitted.kind,
        "features": list(fitted.features),
        "exog": [e.to_json() for e in spec.exog],
        "horizon_h": spec.horizon_h,
        "files": files,
        "calibration": fitted.calibration.to_json(),
        "point": fitted.point.to_json(),
        "validation": {k: round(v, 4) for k, v in fitted.validation.items()},
        "onnx": {"max_abs_diff": round(onnx_diff, 6), "tolerance": ONNX_TOLERANCE},
        "int8": int8,
        "train": spec.params(),
        "versions": library_versions(),
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **meta,
    }
    (out / CARD).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card
