"""Following a plan: the pure part of the gateway's schedule controller.

The controller re-plans every 15 minutes from the measured SOC and, every cycle, asks which
setpoint the current plan wants now. A plan that is too old (the optimizer loop has stalled)
or that does not cover the present gives idle, never a stale command.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from bessai.optimize.model import Schedule


def setpoint_kw(
    schedule: Schedule, plan_start: datetime, now: datetime, *, max_age: timedelta
) -> tuple[float, str]:
    """Battery power the plan asks for at ``now`` (kW, > 0 = charging) and why.

    ``plan_start`` is the UTC start of the plan's first step; the plan's age is measured from
    it. Returns ``(0.0, reason)`` when the plan is older than ``max_age``, starts in the future,
    or has ended.
    """
    if plan_start.tzinfo is None or now.tzinfo is None:
        raise ValueError("setpoint_kw needs timezone-aware datetimes")
    age = now - plan_start
    if age < timedelta(0):
        return 0.0, "idle: plan starts in the future"
    if age > max_age:
        return 0.0, f"idle: plan is {age} old (limit {max_age})"
    slot = math.floor(age / timedelta(hours=schedule.step_h))
    if slot >= len(schedule):
        return 0.0, "idle: plan has ended"
    power = float(schedule.charge_kw[slot] - schedule.discharge_kw[slot])
    return power, schedule.reasons[slot]
