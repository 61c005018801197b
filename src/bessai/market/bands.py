"""From raw model outputs to calibrated, non-crossing p10/p50/p90.

Shared by training and the gateway's predictor (numpy only). Two calibrations, both fitted on
walk-forward out-of-sample predictions, per local hour of day because the CMg's spread depends
on the hour (solar midday sits at zero, the evening ramp is where the errors are):

- ``residual`` (point models): p10/p90 = p50 + the 10th/90th percentile of past errors;
- ``cqr`` (quantile models, conformalized quantile regression): widen (or narrow) the model's
  own p10/p90 by the 80th percentile of how far outside the band the truth fell, so the band
  covers about 80 % out of sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

QUANTILES: tuple[float, float, float] = (0.1, 0.5, 0.9)
COVERAGE_TARGET = QUANTILES[2] - QUANTILES[0]


@dataclass(frozen=True, slots=True)
class BandCalibration:
    method: str  # "residual" or "cqr"
    lower: tuple[float, ...]  # per local hour 0..23
    upper: tuple[float, ...]

    def to_json(self) -> dict[str, object]:
        return {"method": self.method, "lower": list(self.lower), "upper": list(self.upper)}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> BandCalibration:
        lower = data["lower"]
        upper = data["upper"]
        if not isinstance(lower, list) or not isinstance(upper, list):
            raise ValueError("band calibration: 'lower' and 'upper' must be lists")
        return cls(str(data["method"]), tuple(map(float, lower)), tuple(map(float, upper)))


def _per_hour(values: FloatArray, hour: FloatArray, q: float) -> tuple[float, ...]:
    h = hour.astype(np.int64) % 24
    pooled = float(np.quantile(values, q))
    out = []
    for k in range(24):
        sel = values[h == k]
        # Too few errors at an hour (a short validation) would give a noisy edge; pool them.
        out.append(float(np.quantile(sel, q)) if sel.size >= 20 else pooled)
    return tuple(out)


def fit_calibration(raw: FloatArray, y: FloatArray, hour: FloatArray) -> BandCalibration:
    """``raw`` is (n, 3): the model's p10/p50/p90 (a point model repeats its p50)."""
    if np.allclose(raw[:, 0], raw[:, 2]):
        resid = y - raw[:, 1]
        return BandCalibration(
            "residual",
            _per_hour(resid, hour, QUANTILES[0]),
            _per_hour(resid, hour, QUANTILES[2]),
        )
    score = np.maximum(raw[:, 0] - y, y - raw[:, 2])
    n = len(y)
    level = min(1.0, COVERAGE_TARGET * (1 + 1 / max(n, 1)))
    e = _per_hour(score, hour, level)
    return BandCalibration("cqr", e, e)


def apply_calibration(raw: FloatArray, hour: FloatArray, cal: BandCalibration) -> FloatArray:
    """Calibrated (n, 3) p10/p50/p90, sorted per row so the bands never cross."""
    h = hour.astype(np.int64) % 24
    lower = np.asarray(cal.lower)[h]
    upper = np.asarray(cal.upper)[h]
    out = np.empty_like(raw, dtype=np.float64)
    out[:, 1] = raw[:, 1]
    if cal.method == "residual":
        out[:, 0] = raw[:, 1] + lower
        out[:, 2] = raw[:, 1] + upper
    else:
        out[:, 0] = raw[:, 0] - lower
        out[:, 2] = raw[:, 2] + upper
    # Monotone rearrangement: sorting the quantiles is never worse in pinball loss.
    return np.sort(out, axis=1)
