"""PV from clear-sky irradiance and site load: magnitudes a person can check, reproducibility."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bessai.errors import ConfigError
from bessai.plant.load import LoadConfig, ProfileLoad
from bessai.plant.pv import (
    CRUCERO_LAT_DEG,
    CRUCERO_LON_DEG,
    ClearSkyPv,
    PvConfig,
    clear_sky_ghi_w_m2,
)
from bessai.plant.series import SeriesProfile


def _day(date: datetime, step_s: float = 300.0) -> np.ndarray:
    return date.timestamp() + np.arange(0, 86400, step_s)


def test_clear_sky_irradiance_in_santiago() -> None:
    summer = _day(datetime(2023, 12, 21, tzinfo=UTC))
    ghi = clear_sky_ghi_w_m2(summer, -33.45, -70.67)
    # Solar noon in Santiago is about 16:40 UTC (70.67° W, equation of time ~ +2 min).
    noon_utc_h = (summer[np.argmax(ghi)] % 86400) / 3600
    assert 16.4 < noon_utc_h < 17.0
    assert 1000 < ghi.max() < 1100
    assert ghi.min() == 0.0
    # Daily clear-sky insolation: ~8.5 kWh/m² in midsummer, ~3 kWh/m² in midwinter.
    summer_kwh = ghi.sum() * 300 / 3.6e6
    winter_kwh = clear_sky_ghi_w_m2(_day(datetime(2023, 6, 21, tzinfo=UTC)), -33.45, -70.67)
    winter_kwh = winter_kwh.sum() * 300 / 3.6e6
    assert 7.5 < summer_kwh < 9.5
    assert 2.3 < winter_kwh < 4.0
    # Nearer the tropic, winter days are far brighter.
    north = clear_sky_ghi_w_m2(
        _day(datetime(2023, 6, 21, tzinfo=UTC)), CRUCERO_LAT_DEG, CRUCERO_LON_DEG
    )
    assert north.sum() * 300 / 3.6e6 > winter_kwh * 1.4


def test_pv_power_is_reproducible_and_bounded() -> None:
    cfg = PvConfig(peak_power_w=10_000.0, cloudiness=0.2)
    t = datetime(2023, 1, 1, tzinfo=UTC).timestamp() + np.arange(0, 365 * 86400, 900.0)
    a = ClearSkyPv(cfg, seed=5).power_series_w(t)
    b = ClearSkyPv(cfg, seed=5).power_series_w(t)
    c = ClearSkyPv(cfg, seed=6).power_series_w(t)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() == 0.0
    assert a.max() < 10_000.0
    # A year of horizontal PV at ~33° S: 1400-1900 kWh per kWp after 15-25 % losses.
    yearly_kwh_per_kwp = a.sum() * 0.25 / 1000 / 10
    assert 1300 < yearly_kwh_per_kwp < 1900
    one = ClearSkyPv(cfg, seed=5).power_w(datetime(2023, 1, 1, 17, tzinfo=UTC))
    assert one == pytest.approx(a[17 * 4])


def test_residential_load_profile() -> None:
    cfg = LoadConfig(mean_power_w=1000.0)
    load = ProfileLoad(cfg, seed=3)
    t = datetime(2023, 1, 1, tzinfo=UTC).timestamp() + np.arange(0, 365 * 86400, 900.0)
    p = load.power_series_w(t)
    assert p.mean() == pytest.approx(1000.0, rel=0.03)
    assert p.min() >= 0.0
    # Local solar hour 20 (evening peak) against 03 (night), Santiago is UTC-4.7 h in solar time.
    solar_h = ((t / 3600.0) - 70.67 / 15.0) % 24.0
    evening = p[(solar_h >= 19.5) & (solar_h < 20.5)].mean()
    night = p[(solar_h >= 2.5) & (solar_h < 3.5)].mean()
    assert evening > 3 * night
    np.testing.assert_array_equal(p, ProfileLoad(cfg, seed=3).power_series_w(t))


def test_series_profile_holds_and_repeats() -> None:
    start = datetime(2023, 1, 1, tzinfo=UTC)
    prof = SeriesProfile(np.array([1.0, 2.0, 3.0]), start, 3600.0)
    assert prof.power_w(start) == 1.0
    assert prof.power_w(start + timedelta(minutes=59)) == 1.0
    assert prof.power_w(start + timedelta(hours=2, minutes=30)) == 3.0
    assert prof.power_w(start + timedelta(hours=3)) == 1.0
    with pytest.raises(ConfigError):
        SeriesProfile(np.array([1.0, np.nan]), start, 60.0)
