"""The price the optimizer plans on, read off the calibrated quantiles.

Revenue is linear in price for a fixed schedule, so the schedule that earns most on average is
the one planned on the expected price, not on the median: a CMg that spikes upwards has a mean
above its p50, by an amount that depends on the hour (docs/forecast.md). The mean is estimated from
p10/p50/p90 with Swanson's rule (0.3 / 0.4 / 0.3), and then pulled toward the week-mean
forecast by ``baseline_share``: the week-mean is a strong, low-variance estimate of the same mean,
and on the selection year (Crucero 2022, docs/benchmarks.md) plans on the average earned at least
as much as plans on either alone. Numpy only: this runs in the gateway's predictor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bessai.errors import ConfigError, DataError
from bessai.market.features import baseline_point

FloatArray = npt.NDArray[np.float64]

#: Weights on p10/p50/p90 per ``plan_on`` choice.
PLAN_WEIGHTS: dict[str, tuple[float, float, float]] = {
    "mean": (0.3, 0.4, 0.3),  # Swanson's rule: the mean of a skewed distribution
    "p50": (0.0, 1.0, 0.0),
}


@dataclass(frozen=True, slots=True)
class PlanPoint:
    """``point = (1 - s) * (weights · [p10, p50, p90]) + s * week-mean``, s the baseline
    share."""

    plan_on: str = "mean"
    baseline_share: float = 0.5

    def __post_init__(self) -> None:
        if self.plan_on not in PLAN_WEIGHTS:
            raise ConfigError(
                f"forecast: plan_on must be one of {tuple(PLAN_WEIGHTS)}, not {self.plan_on!r}"
            )
        if not 0.0 <= self.baseline_share <= 1.0:
            raise ConfigError(
                f"forecast: the share of the week-mean in the plan price must be in 0..1, "
                f"not {self.baseline_share:g}"
            )

    @property
    def weights(self) -> tuple[float, float, float]:
        return PLAN_WEIGHTS[self.plan_on]

    def apply(self, quantiles: FloatArray, baseline: FloatArray) -> FloatArray:
        """``quantiles`` (n, 3) calibrated p10/p50/p90; ``baseline`` (n,) the week-mean."""
        model = np.asarray(quantiles, dtype=np.float64) @ np.asarray(self.weights)
        s = self.baseline_share
        return np.asarray((1.0 - s) * model + s * np.asarray(baseline, dtype=np.float64))

    def with_plan(self, quantiles: FloatArray, x: npt.NDArray[np.float32]) -> FloatArray:
        """(n, 4): ``quantiles`` and the plan price, the week-mean read off the rows ``x``."""
        plan = self.apply(quantiles, baseline_point("week-mean", x))
        return np.column_stack([quantiles, plan])

    def to_json(self) -> dict[str, object]:
        return {
            "plan_on": self.plan_on,
            "weights": list(self.weights),
            "baseline": "week-mean",
            "baseline_share": self.baseline_share,
        }

    @classmethod
    def from_card(cls, card: dict[str, Any], where: str) -> PlanPoint:
        """The card's rule; a card written before the rule existed planned on the p50."""
        data = card.get("point")
        if data is None:
            return cls("p50", 0.0)
        if not isinstance(data, dict):
            raise DataError(f"{where}: 'point' must be an object")
        try:
            return cls(str(data["plan_on"]), float(data["baseline_share"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where}: 'point' is malformed ({exc!r})") from None
        except ConfigError as exc:
            raise DataError(f"{where}: {exc}") from None
