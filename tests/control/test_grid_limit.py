"""A grid event's capacity limit bounds what the controllers below it propose, from the
measured meter; the manual override is never bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bessai.control.controllers import GridEventSlot, GridLimit, Proposal, TimedSetpoint
from bessai.devices.base import Measurements

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def slot(
    import_w: float | None = None, export_w: float | None = None, margin_w: float = 0.0
) -> GridEventSlot:
    s = GridEventSlot()
    s.margin_w = margin_w
    limit = GridLimit(
        NOW - timedelta(minutes=1), NOW + timedelta(minutes=10), import_w, export_w, "limit"
    )
    s.replace([], [limit])
    return s


def test_import_limit_caps_charging_from_the_measured_meter() -> None:
    # The site draws 1.5 kW without the battery (grid 4.5 kW while charging 3 kW).
    m = Measurements(grid_power_w=4_500.0, battery_power_w=3_000.0)
    out = slot(import_w=1_000.0, margin_w=50.0).constrain(
        Proposal("schedule", 3_000.0, "plan"), m, NOW
    )
    assert out.controller == "grid_event"
    assert out.setpoint_w == 1_000.0 - 50.0 - 1_500.0  # discharge 550 W: the meter at 950 W
    assert "schedule asked 3000 W" in out.reason


def test_a_limit_that_does_not_bind_leaves_the_proposal() -> None:
    m = Measurements(grid_power_w=200.0, battery_power_w=0.0)
    proposal = Proposal("idle", 0.0, "idle")
    assert slot(import_w=1_000.0).constrain(proposal, m, NOW) is proposal


def test_export_limit_raises_the_setpoint() -> None:
    # PV surplus of 4 kW, battery idle: the meter exports 4 kW; export capped at 1 kW.
    m = Measurements(grid_power_w=-4_000.0, battery_power_w=0.0)
    out = slot(export_w=1_000.0).constrain(Proposal("idle", 0.0, "idle"), m, NOW)
    assert out.setpoint_w == 3_000.0


def test_manual_override_and_missing_meter_are_not_bounded() -> None:
    m = Measurements(grid_power_w=4_500.0, battery_power_w=3_000.0)
    manual = Proposal("manual", 3_000.0, "operator")
    assert slot(import_w=1_000.0).constrain(manual, m, NOW) is manual
    unknown = Proposal("schedule", 3_000.0, "plan")
    assert (
        slot(import_w=1_000.0).constrain(unknown, Measurements(battery_power_w=1.0), NOW) is unknown
    )


def test_limits_and_setpoints_end_by_themselves() -> None:
    s = slot(import_w=1_000.0)
    s.replace([TimedSetpoint(NOW, NOW + timedelta(minutes=5), -2_000.0, "dispatch")], s.limits)
    assert s.propose(NOW) == Proposal("grid_event", -2_000.0, "dispatch")
    later = NOW + timedelta(minutes=11)
    assert s.propose(later) is None
    assert s.active_limits(later) == (None, None, "")
