"""SafetyGuard: no request ever leaves it beyond a limit, whatever the controller asked."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bessai.config import BatteryConfig, SafetyConfig
from bessai.control.controllers import (
    GridEventSlot,
    ManualOverride,
    ScheduleController,
    TimedSetpoint,
    decide,
)
from bessai.control.safety import Outcome, SafetyGuard
from bessai.devices.base import Measurements
from bessai.devices.huawei import LIMIT_SOURCES
from bessai.optimize import Schedule

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SAFETY = SafetyConfig(
    grid_import_max_w=9000, grid_export_max_w=7000, max_charge_w=4500, max_discharge_w=4800
)
BATTERY = BatteryConfig(capacity_kwh=15, max_charge_w=5000, max_discharge_w=5000)

opt_power = st.one_of(st.none(), st.floats(0, 20_000))
measurements = st.builds(
    Measurements,
    soc_pct=st.one_of(st.none(), st.floats(0, 100)),
    battery_power_w=st.one_of(st.none(), st.floats(-8000, 8000)),
    battery_temp_c=st.one_of(st.none(), st.floats(-20, 70)),
    grid_power_w=st.one_of(st.none(), st.floats(-15_000, 15_000)),
    max_charge_w=opt_power,
    max_discharge_w=opt_power,
    charge_limit_setting_w=opt_power,
    discharge_limit_setting_w=opt_power,
    alarms=st.lists(
        st.sampled_from(["Overtemperature (2063, minor)", "PV String Loss (2015, warning)"]),
        max_size=2,
    ).map(tuple),
)
requests = st.one_of(st.floats(-50_000, 50_000), st.just(0.0), st.just(float("nan")))


def limits_hold(m: Measurements, setpoint_w: float, requested_w: float) -> None:
    s, b = SAFETY, BATTERY
    if setpoint_w == 0:
        return
    assert requested_w == requested_w  # never a NaN through
    assert (setpoint_w > 0) == (requested_w > 0)  # never flips direction
    assert abs(setpoint_w) <= abs(requested_w) + 1e-9  # never increases a request
    assert m.soc_pct is not None
    assert m.battery_temp_c is not None
    assert m.battery_power_w is not None
    assert s.temp_min_c < m.battery_temp_c < s.temp_max_c
    assert not any(a.startswith("Overtemperature") for a in m.alarms)
    if setpoint_w > 0:
        assert m.soc_pct < s.soc_max_pct
        bounds = [b.max_charge_w, s.max_charge_w, m.max_charge_w, m.charge_limit_setting_w]
        assert setpoint_w <= min(x for x in bounds if x is not None) + 1e-9
        assert m.grid_power_w is not None
        assert m.grid_power_w - m.battery_power_w + setpoint_w <= s.grid_import_max_w + 1e-6  # type: ignore[operator]
    else:
        assert m.soc_pct > s.soc_min_pct
        bounds = [b.max_discharge_w, s.max_discharge_w, m.max_discharge_w,
                  m.discharge_limit_setting_w]  # fmt: skip
        assert -setpoint_w <= min(x for x in bounds if x is not None) + 1e-9
        assert m.grid_power_w is not None
        assert m.grid_power_w - m.battery_power_w + setpoint_w >= -s.grid_export_max_w - 1e-6  # type: ignore[operator]


@given(history=st.lists(measurements, min_size=1, max_size=4), requested=requests)
def test_no_request_leaves_the_guard_beyond_a_limit(
    history: list[Measurements], requested: float
) -> None:
    guard = SafetyGuard(SAFETY, BATTERY)
    for m in history:  # latches carry over from earlier cycles, as in the gateway
        guard.assess(m)
    m = history[-1]
    decision = guard.check(m, requested)
    limits_hold(m, decision.setpoint_w, requested)
    assert decision.outcome in set(Outcome)
    if decision.outcome is Outcome.BLOCKED:
        assert decision.setpoint_w == 0
        assert decision.reason


@given(
    m=measurements,
    controller=st.sampled_from(["manual", "grid_event", "schedule"]),
    setpoint=st.floats(-50_000, 50_000),
)
def test_every_controller_goes_through_the_same_limits(
    m: Measurements, controller: str, setpoint: float
) -> None:
    manual, grid, schedule = ManualOverride(), GridEventSlot(), ScheduleController()
    slot = TimedSetpoint(NOW - timedelta(minutes=1), NOW + timedelta(minutes=1), setpoint, "x")
    if controller == "manual":
        manual.set(setpoint, NOW, 60)
    elif controller == "grid_event":
        grid.add(slot)
    else:
        schedule.load(one_step_plan(setpoint), NOW - timedelta(minutes=1), NOW)
    proposal = decide([manual, grid, schedule], NOW)
    assert proposal.controller == controller
    guard = SafetyGuard(SAFETY, BATTERY)
    guard.assess(m)
    limits_hold(m, guard.check(m, proposal.setpoint_w).setpoint_w, proposal.setpoint_w)


def one_step_plan(setpoint_w: float) -> Schedule:
    kw = np.array([setpoint_w / 1000.0])
    zero = np.zeros(1)
    return Schedule(
        status="optimal",
        charge_kw=np.maximum(kw, 0.0),
        discharge_kw=np.maximum(-kw, 0.0),
        energy_kwh=zero,
        soc_pct=zero,
        prices=zero,
        step_h=1.0,
        revenue=0.0,
        degradation_cost=0.0,
        energy_value_per_mwh=zero,
        actions=("x",),
        reasons=("x",),
        violations=(),
        solver="test",
        solve_time_s=0.0,
    )


# As the Huawei device reports them: its limits carry their register names.
GOOD = Measurements(
    soc_pct=50,
    battery_power_w=0,
    battery_temp_c=25,
    grid_power_w=500,
    limit_sources=LIMIT_SOURCES,
)


def test_outcomes_and_reasons() -> None:
    guard = SafetyGuard(SafetyConfig(), BATTERY)
    guard.assess(GOOD)
    assert guard.check(GOOD, 3000).outcome is Outcome.ALLOWED
    clamped = guard.check(GOOD, 9000)
    assert clamped.outcome is Outcome.CLAMPED
    assert clamped.setpoint_w == 5000
    assert clamped.binding_limit == "battery.max_charge_w = 5000 W"
    with_device = dataclasses.replace(GOOD, max_charge_w=2500)
    assert guard.check(with_device, 9000).binding_limit == "device capability 37046 = 2500 W"
    stale = Measurements(soc_pct=50, battery_power_w=None, battery_temp_c=25)
    assert "stale or missing data: battery_power_w" in guard.check(stale, 100).reason
    assert guard.check(stale, 0).outcome is Outcome.ALLOWED  # stopping is always safe


def test_temperature_latch_has_hysteresis() -> None:
    guard = SafetyGuard(SafetyConfig(temp_max_c=45, temp_hysteresis_c=3), BATTERY)
    hot = Measurements(soc_pct=50, battery_power_w=0, battery_temp_c=45.5)
    guard.assess(hot)
    assert guard.check(hot, -2000).outcome is Outcome.BLOCKED
    assert "45.5 °C" in guard.check(hot, 2000).reason
    cooling = Measurements(soc_pct=50, battery_power_w=0, battery_temp_c=43.0)
    guard.assess(cooling)
    assert guard.check(cooling, -2000).outcome is Outcome.BLOCKED  # within the hysteresis
    cool = Measurements(soc_pct=50, battery_power_w=0, battery_temp_c=41.9)
    guard.assess(cool)
    assert guard.check(cool, -2000).outcome is Outcome.ALLOWED


@pytest.mark.parametrize(
    ("soc", "blocked_w", "allowed_w"), [(98.0, 1000, -1000), (5.0, -1000, 1000)]
)
def test_soc_limit_blocks_one_direction_only(
    soc: float, blocked_w: float, allowed_w: float
) -> None:
    guard = SafetyGuard(SafetyConfig(), BATTERY)
    m = Measurements(soc_pct=soc, battery_power_w=0, battery_temp_c=25)
    guard.assess(m)
    assert guard.check(m, blocked_w).outcome is Outcome.BLOCKED
    assert guard.check(m, allowed_w).outcome is Outcome.ALLOWED


def test_grid_limits_clamp_and_block() -> None:
    guard = SafetyGuard(SafetyConfig(grid_import_max_w=3000), BATTERY)
    m = Measurements(soc_pct=50, battery_power_w=0, battery_temp_c=25, grid_power_w=2000)
    guard.assess(m)
    decision = guard.check(m, 4000)
    assert decision.setpoint_w == 1000
    assert decision.binding_limit == "safety.grid_import_max_w = 3000 W"
    busy = Measurements(soc_pct=50, battery_power_w=0, battery_temp_c=25, grid_power_w=3500)
    assert guard.check(busy, 4000).outcome is Outcome.BLOCKED
    no_meter = Measurements(soc_pct=50, battery_power_w=0, battery_temp_c=25)
    assert "cannot be checked" in guard.check(no_meter, 4000).reason
