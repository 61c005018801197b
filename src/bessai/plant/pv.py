"""PV output from clear-sky irradiance, or from a series (see `bessai.plant.series`).

Sun position: the NOAA general solar-position equations (Spencer's Fourier series for the
declination and the equation of time), accurate to a few tenths of a degree, which is far
below what matters for power. Clear-sky global horizontal irradiance: Haurwitz (1945),
GHI = 1098 cos(z) exp(-0.057 / cos(z)) W/m², the simplest model that needs only the zenith angle
and does well in dry, clear climates like central and northern Chile.

PV power = peak_W * GHI / 1000 * performance_ratio * clearness(day): modules are taken as
horizontal (a tilt adds ~10 % over the year but no new physics here), the performance ratio
lumps inverter, wiring, soiling and temperature losses, and clouds are one clearness factor per
day drawn from the seed, so the same seed gives the same weather.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from bessai.errors import ConfigError
from bessai.plant.series import epoch_s

SANTIAGO_LAT_DEG = -33.45
SANTIAGO_LON_DEG = -70.67
# Crucero substation (Antofagasta region), the node of the shipped CEN price series.
CRUCERO_LAT_DEG = -22.27
CRUCERO_LON_DEG = -69.57

_DAYS_OF_WEATHER = 4 * 365 + 1


@dataclass(frozen=True, slots=True)
class PvConfig:
    peak_power_w: float
    latitude_deg: float = SANTIAGO_LAT_DEG
    longitude_deg: float = SANTIAGO_LON_DEG
    performance_ratio: float = 0.85
    # Mean fraction of clear-sky energy lost to clouds; 0 = always clear.
    cloudiness: float = 0.1

    def __post_init__(self) -> None:
        if self.peak_power_w < 0:
            raise ConfigError(f"pv.peak_power_w must not be negative, got {self.peak_power_w}")
        if not -90 <= self.latitude_deg <= 90 or not -180 <= self.longitude_deg <= 180:
            raise ConfigError("pv latitude/longitude out of range")
        if not 0 < self.performance_ratio <= 1 or not 0 <= self.cloudiness < 1:
            raise ConfigError("pv.performance_ratio must be in (0, 1], cloudiness in [0, 1)")


def cos_zenith(
    t_epoch_s: npt.NDArray[np.float64] | float, latitude_deg: float, longitude_deg: float
) -> npt.NDArray[np.float64]:
    """Cosine of the solar zenith angle at UTC epoch seconds (negative at night)."""
    t = np.asarray(t_epoch_s, dtype=np.float64)
    days = t / 86400.0
    day_of_year = np.floor(days - 365.2425 * np.floor(days / 365.2425))
    hour_utc = (t % 86400.0) / 3600.0
    g = 2.0 * np.pi / 365.0 * (day_of_year + (hour_utc - 12.0) / 24.0)
    eq_time_min = 229.18 * (
        0.000075
        + 0.001868 * np.cos(g)
        - 0.032077 * np.sin(g)
        - 0.014615 * np.cos(2 * g)
        - 0.040849 * np.sin(2 * g)
    )
    decl = (
        0.006918
        - 0.399912 * np.cos(g)
        + 0.070257 * np.sin(g)
        - 0.006758 * np.cos(2 * g)
        + 0.000907 * np.sin(2 * g)
        - 0.002697 * np.cos(3 * g)
        + 0.00148 * np.sin(3 * g)
    )
    true_solar_min = hour_utc * 60.0 + eq_time_min + 4.0 * longitude_deg
    hour_angle = np.radians(true_solar_min / 4.0 - 180.0)
    lat = math.radians(latitude_deg)
    out: npt.NDArray[np.float64] = math.sin(lat) * np.sin(decl) + math.cos(lat) * np.cos(
        decl
    ) * np.cos(hour_angle)
    return out


def clear_sky_ghi_w_m2(
    t_epoch_s: npt.NDArray[np.float64] | float, latitude_deg: float, longitude_deg: float
) -> npt.NDArray[np.float64]:
    """Haurwitz clear-sky global horizontal irradiance in W/m²."""
    cz = cos_zenith(t_epoch_s, latitude_deg, longitude_deg)
    safe = np.maximum(cz, 1e-6)
    out: npt.NDArray[np.float64] = np.where(cz > 0.0, 1098.0 * safe * np.exp(-0.057 / safe), 0.0)
    return out


class ClearSkyPv:
    """PV plant driven by clear-sky irradiance and seeded daily clearness."""

    __slots__ = ("_clearness", "config")

    def __init__(self, config: PvConfig, seed: int = 0) -> None:
        self.config = config
        rng = np.random.default_rng(seed)
        # Exponential day losses: mostly clear days, now and then a dull one, mean = cloudiness.
        loss = np.minimum(1.0, config.cloudiness * rng.exponential(1.0, _DAYS_OF_WEATHER))
        self._clearness = 1.0 - loss

    def power_series_w(self, t_epoch_s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        cfg = self.config
        t = np.asarray(t_epoch_s, dtype=np.float64)
        ghi = clear_sky_ghi_w_m2(t, cfg.latitude_deg, cfg.longitude_deg)
        day = (np.floor(t / 86400.0).astype(np.int64)) % _DAYS_OF_WEATHER
        out: npt.NDArray[np.float64] = (
            cfg.peak_power_w * ghi / 1000.0 * cfg.performance_ratio * self._clearness[day]
        )
        return out

    def power_w(self, now: datetime) -> float:
        return float(self.power_series_w(np.asarray([epoch_s(now)]))[0])
