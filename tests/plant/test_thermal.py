"""Cell temperature: the RC model against its analytic behaviour and the hot-day scenario the
safety tests need."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from bessai.plant.battery import ci_container_1mw_4mwh, luna2000
from bessai.plant.site import SiteModel, SiteModelConfig
from bessai.plant.thermal import ThermalConfig, ThermalModel

T0 = datetime(2024, 1, 15, 14, tzinfo=UTC)


def _cycle_at_full_power(site: SiteModel, hours: float, dt_s: float = 10.0) -> list[float]:
    """Charge and discharge at rated power back to back, as a stuck dispatcher would."""
    rated = site.battery_config.max_charge_w
    sign = 1.0
    now = T0
    temps = []
    for _ in range(int(hours * 3600 / dt_s)):
        st = site.step(sign * rated, dt_s, now)
        now += timedelta(seconds=dt_s)
        temps.append(st.cell_temp_c)
        if (sign > 0 and st.soc_pct >= 99.0) or (sign < 0 and st.soc_pct <= 1.0):
            sign = -sign
    return temps


def test_sustained_full_power_on_a_hot_day_overheats_a_luna_pack() -> None:
    site = SiteModel(
        SiteModelConfig(battery=luna2000(3), ambient_mean_c=35.0, ambient_daily_amplitude_c=0.0)
    )
    temps = _cycle_at_full_power(site, hours=6.0)
    hours_to_45 = next(i for i, t in enumerate(temps) if t > 45.0) * 10.0 / 3600.0
    # Over-temperature must come (the safety tests need it) but not implausibly fast for tens
    # of kilograms of cells heated by a few percent of the power.
    assert 1.0 < hours_to_45 < 6.0
    # Idle on the same day: no heat source, the pack sits at the ambient temperature.
    idle = SiteModel(
        SiteModelConfig(battery=luna2000(3), ambient_mean_c=35.0, ambient_daily_amplitude_c=0)
    )
    now = T0
    for _ in range(360):
        st = idle.step(0.0, 60.0, now)
        now += timedelta(minutes=1)
    assert st.cell_temp_c == pytest.approx(35.0, abs=1e-9)


def test_container_hvac_holds_temperature_at_rated_power() -> None:
    site = SiteModel(
        SiteModelConfig(
            battery=ci_container_1mw_4mwh(),
            ambient_mean_c=35.0,
            ambient_daily_amplitude_c=0.0,
            initial_temp_c=25.0,
        )
    )
    temps = _cycle_at_full_power(site, hours=24.0, dt_s=60.0)
    assert max(temps) < 30.0
    # The cooler's electricity shows up in the auxiliary consumption, beyond the 3 kW base.
    assert site.state.aux_kwh > 3.0 * 24


def test_container_without_hvac_overheats_within_a_working_day() -> None:
    from dataclasses import replace

    ci = ci_container_1mw_4mwh()
    broken = replace(ci, thermal=replace(ci.thermal, cooling_max_w=0.0))
    site = SiteModel(
        SiteModelConfig(
            battery=broken,
            ambient_mean_c=35.0,
            ambient_daily_amplitude_c=0.0,
            initial_temp_c=35.0,
        )
    )
    temps = _cycle_at_full_power(site, hours=16.0, dt_s=60.0)
    # 25 t of cells heated by 10 kW through 0.004 K/W: tau = 28 h, 10 K rise after ~8 h.
    hours_to_45 = next(i for i, t in enumerate(temps) if t > 45.0) / 60.0
    assert 5.0 < hours_to_45 < 12.0


def test_rc_response_matches_the_analytic_solution() -> None:
    cfg = ThermalConfig(
        heat_capacity_j_per_k=50_000.0,
        thermal_resistance_k_per_w=0.2,
        loss_at_rated_power_w=100.0,
        rated_power_w=5000.0,
    )
    tau = 0.2 * 50_000.0
    for dt_s in (1.0, 60.0, 3600.0):
        model = ThermalModel(cfg, temp_c=20.0)
        t = 0.0
        while t < 3 * tau:
            model.step(5000.0, 20.0, dt_s)
            t += dt_s
        expected = 20.0 + 100.0 * 0.2 * (1.0 - math.exp(-t / tau))
        assert model.temp_c == pytest.approx(expected, rel=1e-9)
    # Heat is I^2 R: half the power, a quarter of the heat, either direction.
    model = ThermalModel(cfg, temp_c=20.0)
    assert model.heat_w(-2500.0) == pytest.approx(25.0)
