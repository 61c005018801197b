"""Power from a measured or prepared series, for PV and load alike.

A `SeriesProfile` holds one value per fixed step from a start time and answers `power_w(now)`
with the value of the step that contains `now` (step-hold, as meters report interval averages).
The series repeats after its end, so a one-year profile drives a multi-year simulation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from bessai.errors import ConfigError


class PowerSource(Protocol):
    """Anything that says how much power (W, >= 0) flows at a given moment."""

    def power_w(self, now: datetime) -> float: ...


def epoch_s(now: datetime) -> float:
    """Seconds since 1970-01-01 UTC; a naive datetime is taken as UTC."""
    if now.tzinfo is None:
        return (now - _EPOCH_NAIVE).total_seconds()
    return now.timestamp()


_EPOCH_NAIVE = datetime(1970, 1, 1)


@dataclass(frozen=True, slots=True, eq=False)
class SeriesProfile:
    """Step-hold power series: `values_w[i]` holds from `start + i*step_s` for `step_s`."""

    values_w: npt.NDArray[np.float64]
    start: datetime
    step_s: float

    def __post_init__(self) -> None:
        values = np.asarray(self.values_w, dtype=np.float64).ravel()
        if values.size == 0:
            raise ConfigError("a power series needs at least one value")
        if not np.all(np.isfinite(values)):
            raise ConfigError("a power series must not contain NaN or infinite values")
        if self.step_s <= 0:
            raise ConfigError(f"series step must be positive, got {self.step_s} s")
        object.__setattr__(self, "values_w", values)

    def power_w(self, now: datetime) -> float:
        i = int((epoch_s(now) - epoch_s(self.start)) // self.step_s) % self.values_w.size
        return float(self.values_w[i])
