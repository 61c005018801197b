"""From raw model outputs to calibrated, non-crossing p10/p50/p90.

Shared by training and the gateway's predictor (numpy only). Two calibrations, both fitted on
walk-forward out-of-sample predictions, per local hour of day because the CMg's spread depends
on the hour (solar midday sits at zero, the evening ramp is where the errors are):

- ``residual`` (point models): p10/p90 = p50 + the 10th/90th percentile of past errors;
- ``cqr`` (quantile models, conformalized quantile regression): widen (or narrow) the model's
  own p10/p90 by the 80th percentile of how far outside the band the truth fell, so the band
  covers about 80 % out of sample.

Scaled (``scale_floor`` set): the errors are measured in units of the price's spread over the
week before the issue time (``std_168h``), and the band edges are placed in those units. A
calibration fitted in a wild year then narrows by itself in a calm one, and widens again when
the spread comes back, instead of carrying the fitting period's width into every forecast. The
floor (a tenth of the median spread seen in calibration) keeps a flat week from collapsing the
band to nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bessai.market.features import hour_of, spread_of

FloatArray = npt.NDArray[np.float64]

QUANTILES: tuple[float, float, float] = (0.1, 0.5, 0.9)
COVERAGE_TARGET = QUANTILES[2] - QUANTILES[0]


@dataclass(frozen=True, slots=True)
class Bands:
    """Forecast quantiles per step, in the price unit: what a forecaster hands the optimizer
    for its risk-aware mode."""

    p10: Sequence[float] | FloatArray
    p50: Sequence[float] | FloatArray
    p90: Sequence[float] | FloatArray

    def confidence(self) -> FloatArray:
        """1 - (p90 - p10) / max(|p50|, 1): 1 for a sharp forecast, 0 when the band is as wide
        as the price itself."""
        p10, p50, p90 = (np.asarray(x, dtype=np.float64) for x in (self.p10, self.p50, self.p90))
        width = np.maximum(p90 - p10, 0.0)
        return np.clip(1.0 - width / np.maximum(np.abs(p50), 1.0), 0.0, 1.0)


@dataclass(frozen=True, slots=True)
class BandCalibration:
    method: str  # "residual" or "cqr"
    lower: tuple[float, ...]  # per local hour 0..23 (in spread units when scaled)
    upper: tuple[float, ...]
    scale_floor: float | None = None  # None: unscaled, edges in price units

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "method": self.method,
            "lower": list(self.lower),
            "upper": list(self.upper),
        }
        if self.scale_floor is not None:
            out["scale"] = "std_168h"
            out["scale_floor"] = self.scale_floor
        return out

    @classmethod
    def from_json(cls, data: dict[str, object]) -> BandCalibration:
        lower = data["lower"]
        upper = data["upper"]
        if not isinstance(lower, list) or not isinstance(upper, list):
            raise ValueError("band calibration: 'lower' and 'upper' must be lists")
        floor = data.get("scale_floor")
        return cls(
            str(data["method"]),
            tuple(map(float, lower)),
            tuple(map(float, upper)),
            None if floor is None else float(str(floor)),
        )

    def spread(self, scale: FloatArray | None) -> FloatArray | float:
        """The unit the edges are in, per row: 1 when unscaled."""
        if self.scale_floor is None:
            return 1.0
        if scale is None:
            raise ValueError("band calibration: a scaled calibration needs the spread per row")
        return np.maximum(np.asarray(scale, dtype=np.float64), self.scale_floor)


def _per_hour(values: FloatArray, hour: FloatArray, q: float) -> tuple[float, ...]:
    h = hour.astype(np.int64) % 24
    pooled = float(np.quantile(values, q))
    out = []
    for k in range(24):
        sel = values[h == k]
        # Too few errors at an hour (a short validation) would give a noisy edge; pool them.
        out.append(float(np.quantile(sel, q)) if sel.size >= 20 else pooled)
    return tuple(out)


def fit_calibration(
    raw: FloatArray, y: FloatArray, hour: FloatArray, scale: FloatArray | None = None
) -> BandCalibration:
    """``raw`` is (n, 3): the model's p10/p50/p90 (a point model repeats its p50); ``scale``
    the spread per row for a scaled calibration (None: edges in price units)."""
    floor = None
    unit: FloatArray | float = 1.0
    if scale is not None:
        median = float(np.median(scale))
        floor = max(0.1 * median, 1e-6)
        unit = np.maximum(scale, floor)
    if np.allclose(raw[:, 0], raw[:, 2]):
        resid = (y - raw[:, 1]) / unit
        return BandCalibration(
            "residual",
            _per_hour(resid, hour, QUANTILES[0]),
            _per_hour(resid, hour, QUANTILES[2]),
            floor,
        )
    score = np.maximum(raw[:, 0] - y, y - raw[:, 2]) / unit
    n = len(y)
    level = min(1.0, COVERAGE_TARGET * (1 + 1 / max(n, 1)))
    e = _per_hour(score, hour, level)
    return BandCalibration("cqr", e, e, floor)


def calibrate_rows(raw: FloatArray, x: npt.NDArray[np.float32], cal: BandCalibration) -> FloatArray:
    """Calibrated (n, 3) p10/p50/p90 of a model's raw outputs for the feature rows ``x``: the
    hour and the spread each row is calibrated by are read off the rows themselves."""
    return apply_calibration(raw, hour_of(x), cal, spread_of(x))


def apply_calibration(
    raw: FloatArray, hour: FloatArray, cal: BandCalibration, scale: FloatArray | None = None
) -> FloatArray:
    """Calibrated (n, 3) p10/p50/p90, sorted per row so the bands never cross."""
    h = hour.astype(np.int64) % 24
    unit = cal.spread(scale)
    lower = np.asarray(cal.lower)[h] * unit
    upper = np.asarray(cal.upper)[h] * unit
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
