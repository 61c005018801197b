"""Controllers propose a battery setpoint; the first in priority order that has something to
say wins: manual override > grid event > optimizer schedule > time-of-use rules > idle.
Each says why.

A proposal is only a request: the SafetyGuard decides what reaches the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from bessai.errors import BessaiError
from bessai.optimize import Bands, Schedule
from bessai.optimize.follow import current_slot


@dataclass(frozen=True, slots=True)
class Proposal:
    controller: str
    setpoint_w: float
    reason: str


class Controller(Protocol):
    name: str

    def propose(self, now: datetime) -> Proposal | None: ...


class ManualOverride:
    """A person's setpoint that expires by itself (default 60 s), set through the API."""

    name = "manual"

    def __init__(self, default_s: float = 60.0, max_s: float = 3600.0) -> None:
        self.default_s = default_s
        self.max_s = max_s
        self._setpoint_w: float | None = None
        self._until: datetime | None = None
        self._reason = ""

    def set(
        self, setpoint_w: float, now: datetime, duration_s: float | None = None, reason: str = ""
    ) -> datetime:
        duration_s = self.default_s if duration_s is None else duration_s
        if not 0 < duration_s <= self.max_s:
            raise BessaiError(
                f"override duration {duration_s:g} s must be between 0 and {self.max_s:g} s"
            )
        self._setpoint_w = float(setpoint_w)
        self._until = now + timedelta(seconds=duration_s)
        self._reason = reason or "manual override"
        return self._until

    def restore(self, setpoint_w: float, until: datetime, reason: str) -> None:
        """Re-install an override saved before a restart, with its original expiry."""
        self._setpoint_w = float(setpoint_w)
        self._until = until
        self._reason = reason or "manual override"

    @property
    def reason(self) -> str:
        return self._reason

    def clear(self) -> None:
        self._setpoint_w = None
        self._until = None

    @property
    def until(self) -> datetime | None:
        return self._until

    @property
    def setpoint_w(self) -> float | None:
        return self._setpoint_w

    def propose(self, now: datetime) -> Proposal | None:
        if self._setpoint_w is None or self._until is None:
            return None
        if now >= self._until:
            self.clear()
            return None
        left_s = (self._until - now).total_seconds()
        return Proposal(self.name, self._setpoint_w, f"{self._reason} (expires in {left_s:.0f} s)")


@dataclass(frozen=True, slots=True)
class TimedSetpoint:
    start: datetime
    end: datetime
    setpoint_w: float
    reason: str


class GridEventSlot:
    """A utility's demand-response event (OpenADR); the VPP client fills it."""

    name = "grid_event"

    def __init__(self) -> None:
        self.events: list[TimedSetpoint] = []

    def add(self, event: TimedSetpoint) -> None:
        self.events.append(event)

    def propose(self, now: datetime) -> Proposal | None:
        self.events = [e for e in self.events if e.end > now]
        for event in self.events:
            if event.start <= now < event.end:
                return Proposal(self.name, event.setpoint_w, event.reason)
        return None


class ScheduleController:
    """Follows the optimizer's current plan. A plan that is too old (the planner has stalled),
    not started or ended proposes nothing, so a lower-priority controller (ultimately idle)
    decides: a stale plan never drives the battery."""

    name = "schedule"

    def __init__(self, max_age: timedelta = timedelta(minutes=45)) -> None:
        self.max_age = max_age
        self.schedule: Schedule | None = None
        self.plan_start: datetime | None = None
        self.created_at: datetime | None = None
        #: the forecast's quantile bands per plan step, when the forecaster gives them
        self.bands: Bands | None = None

    def load(
        self,
        schedule: Schedule,
        plan_start: datetime,
        created_at: datetime,
        bands: Bands | None = None,
    ) -> None:
        self.schedule = schedule
        self.plan_start = plan_start
        self.created_at = created_at
        self.bands = bands

    def propose(self, now: datetime) -> Proposal | None:
        if self.schedule is None or self.plan_start is None:
            return None
        slot, reason = current_slot(
            self.schedule, self.plan_start, now, max_age=self.max_age, created_at=self.created_at
        )
        if slot is None:
            return None
        power_kw = float(self.schedule.charge_kw[slot] - self.schedule.discharge_kw[slot])
        return Proposal(self.name, power_kw * 1000.0, f"plan: {reason}")


class TimeOfUseRules:
    """Fixed daily windows in site local time (e.g. discharge 18:00-21:00 at 3 kW), the way
    many owners run a battery without an optimizer. Below the optimizer schedule in priority."""

    name = "time_of_use"

    def __init__(self, rules: Sequence[tuple[time, time, float]], tz: ZoneInfo) -> None:
        self.rules = list(rules)
        self.tz = tz

    def propose(self, now: datetime) -> Proposal | None:
        local = now.astimezone(self.tz).time()
        for start, end, setpoint_w in self.rules:
            inside = start <= local < end if start < end else (local >= start or local < end)
            if inside:
                window = f"{start:%H:%M}-{end:%H:%M}" if end != time.max else f"{start:%H:%M}-24:00"
                return Proposal(self.name, setpoint_w, f"time-of-use rule {window} local")
        return None


class Idle:
    name = "idle"

    def propose(self, now: datetime) -> Proposal:
        return Proposal(self.name, 0.0, "no controller asks for power; the inverter self-consumes")


def decide(controllers: Sequence[Controller], now: datetime) -> Proposal:
    """The proposal of the first controller, in priority order, that has one; else idle."""
    for controller in controllers:
        proposal = controller.propose(now)
        if proposal is not None:
            return proposal
    return Idle().propose(now)
