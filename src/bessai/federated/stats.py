"""Ridge regression from summed sufficient statistics: federation that equals pooling.

The centralised forecaster's Ridge (:mod:`bessai.market.training`) standardises every feature
with the pooled mean and (population) standard deviation and fits an intercept. Both depend on
the rows only through sums, so sites send sums and never rows:

1. *moments*: the row count ``n``, the column sums of the features and of the target;
   the server adds them and sends back the pooled means;
2. *gram*: each site's centred cross-products ``(X - mu)'(X - mu)`` and ``(X - mu)'(y - ybar)``
   around those pooled means. Their sum is exactly the pooled centred Gram matrix, so the solve
   below gives the pooled Ridge to rounding (centring before multiplying keeps the sums
   well-conditioned, which one round of raw ``X'X`` would not).

Numpy only; no Flower here (:mod:`.flower` carries these arrays).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from bessai.errors import DataError

FloatArray = npt.NDArray[np.float64]


class PointModel(Protocol):
    """A model of the residual target on raw features (the Ridge, the MLP)."""

    def predict(self, x: npt.NDArray[np.floating[Any]]) -> FloatArray:
        """The residual forecast."""
        ...


@dataclass(frozen=True, slots=True)
class Moments:
    """Row count and column sums of one site (or of several, added)."""

    n: int
    sum_x: FloatArray  # (p,)
    sum_y: float

    @classmethod
    def of(cls, x: npt.NDArray[np.floating], y: FloatArray) -> Moments:
        """The moments of the rows ``x`` (n, p) and targets ``y`` (n,)."""
        x64 = np.asarray(x, dtype=np.float64)
        return cls(len(y), x64.sum(axis=0), float(np.sum(y)))

    def mean_x(self) -> FloatArray:
        """The feature means."""
        return self.sum_x / self.n

    def mean_y(self) -> float:
        """The target mean."""
        return self.sum_y / self.n


def add_moments(parts: Iterable[Moments]) -> Moments:
    """The moments of the union of the sites' rows."""
    items = list(parts)
    if not items or sum(m.n for m in items) == 0:
        raise DataError("federated: no site sent any training row")
    return Moments(
        sum(m.n for m in items),
        np.sum([m.sum_x for m in items], axis=0),
        float(sum(m.sum_y for m in items)),
    )


@dataclass(frozen=True, slots=True)
class Gram:
    """Centred cross-products around the *pooled* means (additive over sites)."""

    xx: FloatArray  # (p, p)
    xy: FloatArray  # (p,)
    yy: float
    n: int

    @classmethod
    def of(
        cls, x: npt.NDArray[np.floating], y: FloatArray, mean_x: FloatArray, mean_y: float
    ) -> Gram:
        """The cross-products of one site's rows, centred on the pooled means."""
        xc = np.asarray(x, dtype=np.float64) - mean_x
        yc = np.asarray(y, dtype=np.float64) - mean_y
        return cls(xc.T @ xc, xc.T @ yc, float(yc @ yc), len(yc))


def add_grams(parts: Iterable[Gram]) -> Gram:
    """The cross-products of the union of the sites' rows."""
    items = list(parts)
    if not items:
        raise DataError("federated: no site sent its cross-products")
    return Gram(
        np.sum([g.xx for g in items], axis=0),
        np.sum([g.xy for g in items], axis=0),
        float(sum(g.yy for g in items)),
        sum(g.n for g in items),
    )


@dataclass(frozen=True, slots=True)
class LinearModel:
    """``y = x @ weights + intercept`` on raw features; ``coef`` are the standardised ones
    (what scikit-learn's ``Ridge`` inside a ``StandardScaler`` pipeline reports)."""

    weights: FloatArray
    intercept: float
    coef: FloatArray
    mean: FloatArray
    scale: FloatArray

    def predict(self, x: npt.NDArray[np.floating]) -> FloatArray:
        """The model's output for rows ``x``."""
        return np.asarray(np.asarray(x, dtype=np.float64) @ self.weights + self.intercept)

    def vector(self) -> FloatArray:
        """Weights and intercept as one vector (what the equality check compares)."""
        return np.append(self.weights, self.intercept)


def solve_ridge(moments: Moments, gram: Gram, alpha: float) -> LinearModel:
    """The Ridge of the pooled rows, standardised like scikit-learn's ``StandardScaler``
    (population std; a constant column keeps scale 1) with an unpenalised intercept."""
    if gram.n != moments.n:
        raise DataError(
            f"federated: the cross-products cover {gram.n} rows, the moments {moments.n}; "
            "a site changed its data between the rounds"
        )
    var = np.diag(gram.xx) / moments.n
    scale = np.sqrt(var)
    scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(moments.mean_x()))] = 1.0
    zz = gram.xx / np.outer(scale, scale)
    zy = gram.xy / scale
    coef = np.linalg.solve(zz + alpha * np.eye(len(zy)), zy)
    weights = coef / scale
    intercept = moments.mean_y() - float(moments.mean_x() @ weights)
    return LinearModel(weights, intercept, coef, moments.mean_x(), scale)


def pooled_ridge(x: npt.NDArray[np.floating], y: FloatArray, alpha: float) -> LinearModel:
    """The same Ridge computed on pooled rows (the centralised reference, one site's
    local-only model)."""
    m = Moments.of(x, y)
    return solve_ridge(m, Gram.of(x, y, m.mean_x(), m.mean_y()), alpha)


#: Calibration histograms: errors in units of the week's spread, binned on a fixed grid that
#: every site shares, per local hour.
HIST_EDGES = np.linspace(-12.0, 12.0, 961)


def error_histogram(err: FloatArray, hour: FloatArray) -> FloatArray:
    """(24, bins) counts of ``err`` per local hour (values off the grid land in its end bins)."""
    clipped = np.clip(err, HIST_EDGES[0], HIST_EDGES[-1] - 1e-9)
    h = hour.astype(np.int64) % 24
    out = np.zeros((24, len(HIST_EDGES) - 1))
    for k in range(24):
        out[k] = np.histogram(clipped[h == k], bins=HIST_EDGES)[0]
    return out


def histogram_quantile(counts: FloatArray, q: float) -> float:
    """The ``q`` quantile of binned values (linear inside the bin)."""
    total = float(counts.sum())
    if total == 0:
        return 0.0
    cum = np.cumsum(counts) / total
    k = int(np.searchsorted(cum, q))
    k = min(k, len(counts) - 1)
    before = cum[k - 1] if k > 0 else 0.0
    share = (q - before) / (cum[k] - before) if cum[k] > before else 0.5
    lo, hi = HIST_EDGES[k], HIST_EDGES[k + 1]
    return float(lo + share * (hi - lo))
