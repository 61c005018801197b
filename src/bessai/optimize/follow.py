"""Following a plan: the pure part of the gateway's schedule controller.

The controller re-plans every 15 minutes from the measured SOC and, every cycle, asks which
setpoint the current plan wants now. A plan that is too old (the optimizer loop has stalled)
or that does not cover the present gives idle, never a stale command.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from bessai.optimize.schedule import Schedule


def current_slot(
    schedule: Schedule,
    plan_start: datetime,
    now: datetime,
    *,
    max_age: timedelta,
    created_at: datetime | None = None,
) -> tuple[int | None, str]:
    """Index of the plan step covering ``now``, or None and why the plan does not apply: it is
    older than ``max_age`` (measured from ``created_at``, by default from ``plan_start``, the
    UTC start of its first step), starts in the future, or has ended. A plan made at 10:55 on
    hourly prices starts at 10:00; it is 5 minutes old, not 55."""
    if plan_start.tzinfo is None or now.tzinfo is None:
        raise ValueError("setpoint_kw needs timezone-aware datetimes")
    into_plan = now - plan_start
    if into_plan < timedelta(0):
        return None, "idle: plan starts in the future"
    age = now - (created_at if created_at is not None else plan_start)
    if age > max_age:
        return None, f"idle: plan is {age} old (limit {max_age})"
    slot = math.floor(into_plan / timedelta(hours=schedule.step_h))
    if slot >= len(schedule):
        return None, "idle: plan has ended"
    return slot, schedule.reasons[slot]


def setpoint_kw(
    schedule: Schedule, plan_start: datetime, now: datetime, *, max_age: timedelta
) -> tuple[float, str]:
    """Battery power the plan asks for at ``now`` (kW, > 0 = charging) and why; ``(0.0,
    reason)`` when the plan does not apply (see :func:`current_slot`)."""
    slot, reason = current_slot(schedule, plan_start, now, max_age=max_age)
    if slot is None:
        return 0.0, reason
    return float(schedule.charge_kw[slot] - schedule.discharge_kw[slot]), reason
