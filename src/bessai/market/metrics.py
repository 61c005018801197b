"""Forecast quality figures: errors, quantile losses, band coverage and within-day ranking."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from bessai.market.bands import QUANTILES

FloatArray = npt.NDArray[np.float64]


def pinball(y: FloatArray, q: FloatArray, tau: float) -> float:
    """The mean pinball (quantile) loss of predictions `q` for quantile `tau`."""
    diff = y - q
    return float(np.mean(np.maximum(tau * diff, (tau - 1) * diff)))


def forecast_metrics(y: FloatArray, bands: FloatArray) -> dict[str, float]:
    """MAE and RMSE of the p50, pinball loss at 0.1/0.5/0.9 and p10–p90 coverage (share of
    actual prices inside the closed band) for ``bands`` (n, 3)."""
    if len(y) == 0:
        raise ValueError("forecast metrics need at least one value")
    err = y - bands[:, 1]
    out = {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
    }
    for k, tau in enumerate(QUANTILES):
        out[f"pinball_{round(tau * 100)}"] = pinball(y, bands[:, k], tau)
    out["coverage_10_90"] = float(np.mean((y >= bands[:, 0]) & (y <= bands[:, 2])))
    return out


def kendall_tau(a: FloatArray, b: FloatArray) -> float:
    """Kendall's tau-b between two rankings (NaN if either is constant)."""
    from scipy.stats import kendalltau

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(kendalltau(a, b).statistic)


def within_day_tau(days: Sequence[tuple[FloatArray, FloatArray]]) -> float:
    """Mean over days of Kendall's tau between the forecast and the actual prices of the day:
    what dispatch value depends on (the order of the hours), not the level. Days where either
    side is flat (all zero, say) have no ranking and are left out."""
    taus = [kendall_tau(f, a) for f, a in days]
    valid = [t for t in taus if not math.isnan(t)]
    return float(np.mean(valid)) if valid else math.nan
