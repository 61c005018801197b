"""Site load from a daily profile shape with seeded noise, or from a series
(see `bessai.plant.series`).

The shape is 24 hourly factors (mean 1) in local mean solar time (UTC + longitude / 15 h), so
no time-zone database is needed and the evening peak sits after sunset wherever the site is.
Noise is an AR(1) process at 15-minute resolution, drawn once per seed for a year and repeated,
so a given seed and timestamp always give the same load whatever the step length or the order
of the calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt

from bessai.errors import ConfigError
from bessai.plant.pv import SANTIAGO_LON_DEG
from bessai.plant.series import epoch_s

# Hourly factors, hour 0..23 local solar time. Residential: a Chilean house (low night,
# breakfast bump, evening peak from lighting and cooking). Commercial: office/retail hours.
_SHAPES: dict[str, tuple[float, ...]] = {
    "residential": (
        0.55, 0.50, 0.48, 0.47, 0.48, 0.55, 0.80, 1.05, 1.00, 0.85, 0.80, 0.82,
        0.90, 0.88, 0.80, 0.80, 0.90, 1.10, 1.45, 1.80, 1.85, 1.65, 1.20, 0.80,
    ),
    "commercial": (
        0.45, 0.42, 0.42, 0.42, 0.43, 0.48, 0.65, 1.05, 1.45, 1.60, 1.65, 1.65,
        1.55, 1.60, 1.65, 1.60, 1.50, 1.25, 0.95, 0.75, 0.60, 0.52, 0.48, 0.46,
    ),
}  # fmt: skip

_NOISE_STEP_S = 900.0
_NOISE_STEPS = 365 * 96


@dataclass(frozen=True, slots=True)
class LoadConfig:
    mean_power_w: float
    shape: Literal["residential", "commercial"] = "residential"
    longitude_deg: float = SANTIAGO_LON_DEG
    # Standard deviation of the multiplicative noise.
    noise_fraction: float = 0.15

    def __post_init__(self) -> None:
        if self.mean_power_w < 0:
            raise ConfigError(f"load.mean_power_w must not be negative, got {self.mean_power_w}")
        if self.shape not in _SHAPES:
            raise ConfigError(f"load.shape must be one of {sorted(_SHAPES)}, got {self.shape!r}")
        if not 0 <= self.noise_fraction < 1:
            raise ConfigError(f"load.noise_fraction must be in [0, 1), got {self.noise_fraction}")


class ProfileLoad:
    """Site load from a daily shape and seeded noise."""

    __slots__ = ("_noise", "_shape", "config")

    def __init__(self, config: LoadConfig, seed: int = 0) -> None:
        self.config = config
        shape = np.asarray(_SHAPES[config.shape], dtype=np.float64)
        self._shape = np.append(shape / shape.mean(), shape[0] / shape.mean())
        rng = np.random.default_rng(seed)
        # AR(1) with ~2 h correlation: appliances switch in runs, not white noise.
        phi = float(np.exp(-_NOISE_STEP_S / 7200.0))
        eps = rng.standard_normal(_NOISE_STEPS) * np.sqrt(1.0 - phi * phi)
        noise = np.empty(_NOISE_STEPS)
        acc = 0.0
        for i in range(_NOISE_STEPS):
            acc = phi * acc + eps[i]
            noise[i] = acc
        self._noise = np.maximum(0.0, 1.0 + config.noise_fraction * noise)

    def power_series_w(self, t_epoch_s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        cfg = self.config
        t = np.asarray(t_epoch_s, dtype=np.float64)
        solar_h = ((t / 3600.0) + cfg.longitude_deg / 15.0) % 24.0
        base = np.interp(solar_h, np.arange(25.0), self._shape)
        idx = (np.floor(t / _NOISE_STEP_S).astype(np.int64)) % _NOISE_STEPS
        out: npt.NDArray[np.float64] = cfg.mean_power_w * base * self._noise[idx]
        return out

    def power_w(self, now: datetime) -> float:
        return float(self.power_series_w(np.asarray([epoch_s(now)]))[0])
