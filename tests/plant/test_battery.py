"""Battery physics: energy balance, SOC bounds, limits, efficiencies, self-discharge."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bessai.errors import ConfigError
from bessai.plant.battery import BatteryModel, BatteryParams, ci_container_1mw_4mwh, luna2000
from bessai.plant.site import SiteModel, SiteModelConfig

T0 = datetime(2023, 1, 1, tzinfo=UTC)


def _lossless_storage(cfg: BatteryParams) -> BatteryParams:
    from dataclasses import replace

    return replace(cfg, self_discharge_pct_per_month=0.0, aux_power_w=0.0)


def test_presets_have_the_datasheet_figures() -> None:
    luna = luna2000(3)
    assert luna.usable_energy_kwh == 15.0
    assert luna.max_charge_w == luna.max_discharge_w == 7500.0
    assert luna2000(1).usable_energy_kwh == 5.0
    assert luna2000(1).max_charge_w == 2500.0
    ci = ci_container_1mw_4mwh()
    assert ci.usable_energy_kwh == 4000.0
    assert ci.max_discharge_w == 1_000_000.0


@pytest.mark.parametrize("preset", [luna2000(3), ci_container_1mw_4mwh()], ids=["luna", "ci"])
def test_energy_balance_closes_over_a_year_at_15_min(preset: BatteryParams) -> None:
    """charged * eta_c - discharged / eta_d - self-discharge - aux - fade loss = delta E."""
    site = SiteModel(SiteModelConfig(battery=preset, initial_soc_pct=30.0), seed=4)
    e0 = site.state.energy_kwh
    rng = np.random.default_rng(1)
    rated = preset.max_charge_w
    now = T0
    for i in range(365 * 96):
        hour = (i % 96) / 4
        # Charge at night, discharge in the evening, random requests in between, some of them
        # beyond the limits so that clipping is exercised too.
        if 1 <= hour < 5:
            sp = 1.2 * rated
        elif 18 <= hour < 22:
            sp = -1.2 * rated
        else:
            sp = float(rng.uniform(-0.3, 0.3)) * rated
        st_ = site.step(sp, 900.0, now)
        now += timedelta(minutes=15)
    s = site.state
    lhs = (
        s.charged_kwh * preset.charge_efficiency
        - s.discharged_kwh / preset.discharge_efficiency
        - s.self_discharge_kwh
        - s.aux_kwh
        - s.fade_loss_kwh
    )
    assert lhs == pytest.approx(s.energy_kwh - e0, abs=1e-9 * s.charged_kwh)
    # Every loss term is really exercised, or the test would prove little.
    assert s.self_discharge_kwh > 0
    assert s.aux_kwh > 0
    assert s.charged_kwh > 300 * preset.usable_energy_kwh * 0.5
    assert st_.soh_pct < 100.0


def test_round_trip_efficiency() -> None:
    cfg = _lossless_storage(luna2000(1))
    bat = BatteryModel(cfg, soc_pct=0.0)
    while bat.soc_pct < 100.0:
        bat.step(2500.0, 60.0, 25.0)
    stored = bat.energy_kwh
    assert stored == pytest.approx(bat.charged_kwh * cfg.charge_efficiency, rel=1e-12)
    assert stored == pytest.approx(5.0)
    while bat.soc_pct > 0.0:
        bat.step(-2500.0, 60.0, 25.0)
    assert bat.discharged_kwh == pytest.approx(5.0 * cfg.discharge_efficiency, rel=1e-9)
    assert bat.discharged_kwh / bat.charged_kwh == pytest.approx(0.975**2, rel=1e-9)


def test_self_discharge_rate() -> None:
    cfg = luna2000(1)
    from dataclasses import replace

    bat = BatteryModel(replace(cfg, aux_power_w=0.0), soc_pct=100.0)
    for _ in range(30 * 24):
        bat.step(0.0, 3600.0, 25.0)
    # 2 %/month of the stored energy, compounding hourly: exp(-0.02).
    assert bat.soc_pct == pytest.approx(100.0 * math.exp(-0.02), rel=1e-3)


def test_aux_drains_an_idle_battery_then_it_sleeps() -> None:
    cfg = luna2000(1)  # 4 W of auxiliaries
    bat = BatteryModel(cfg, soc_pct=1.0)
    for _ in range(24 * 60):
        bat.step(0.0, 3600.0, 25.0)
    assert bat.soc_pct == 0.0
    assert bat.energy_kwh == 0.0
    assert bat.aux_kwh + bat.self_discharge_kwh == pytest.approx(0.05)


def test_taper_and_temperature_derating() -> None:
    cfg = luna2000(3)
    from bessai.plant.battery import power_limits_w

    assert power_limits_w(cfg, 50.0, 25.0) == (7500.0, 7500.0)
    ch, dis = power_limits_w(cfg, 95.0, 25.0)
    assert 0 < ch < 7500.0
    assert dis == 7500.0
    assert power_limits_w(cfg, 100.0, 25.0)[0] == 0.0
    assert power_limits_w(cfg, 0.0, 25.0)[1] == 0.0
    assert 0 < power_limits_w(cfg, 5.0, 25.0)[1] < 7500.0
    # LFP is not charged below 0 °C, but may still discharge.
    ch, dis = power_limits_w(cfg, 50.0, -5.0)
    assert ch == 0.0
    assert dis > 0.0
    hot = power_limits_w(cfg, 50.0, 55.0)
    assert 0 < hot[0] < 7500.0
    assert 0 < hot[1] < 7500.0
    assert power_limits_w(cfg, 50.0, 61.0) == (0.0, 0.0)


@settings(max_examples=60, deadline=None)
@given(
    soc0=st.floats(0.0, 100.0),
    temp=st.floats(-25.0, 70.0),
    steps=st.lists(
        st.tuples(st.floats(-3.0, 3.0), st.floats(0.5, 7200.0)), min_size=1, max_size=40
    ),
)
def test_soc_stays_in_bounds_and_limits_hold(
    soc0: float, temp: float, steps: list[tuple[float, float]]
) -> None:
    cfg = luna2000(2)
    bat = BatteryModel(cfg, soc_pct=soc0)
    for frac, dt_s in steps:
        max_ch, max_dis = bat.limits_w(temp)
        setpoint = frac * cfg.max_charge_w
        p = bat.step(setpoint, dt_s, temp)
        assert -max_dis * (1 + 1e-12) <= p <= max_ch * (1 + 1e-12)
        # Never more than asked, and in the asked direction.
        assert p * setpoint >= 0.0
        assert abs(p) <= abs(setpoint) * (1 + 1e-12)
        assert 0.0 <= bat.soc_pct <= 100.0
        assert 0.0 <= bat.energy_kwh <= bat.capacity_kwh


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="charge_efficiency"):
        BatteryParams(
            name="bad",
            nameplate_energy_kwh=5,
            max_charge_w=1,
            max_discharge_w=1,
            thermal=luna2000(1).thermal,
            charge_efficiency=1.2,
        )
    with pytest.raises(ConfigError, match="module"):
        luna2000(0)
