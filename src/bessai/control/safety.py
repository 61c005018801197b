"""The SafetyGuard: every request for battery power, from any controller or the API, passes
here before anything is written. It allows, clamps (naming the binding limit) or blocks (naming
the reason); it never increases a request, and a request for zero is always allowed because
stopping is always safe.

Conditions with a threshold (temperature, SOC at a limit, blocking alarms) latch and release
only after a hysteresis, so a value hovering at a limit does not make the battery chatter.
`assess` updates the latches once per cycle from the measurements; `check` applies them to a
request and has no side effects.

`verdict` is the one answer to "may this setpoint reach the device now": fail-safe first, then
the measurements' presence, then the guard's limits. The cycle, the API override and every other
path that can move a battery ask it, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bessai.config import BatteryConfig, SafetyConfig
from bessai.devices.base import HOLD_BOTH, DirectionBlock, Measurements


class Outcome(StrEnum):
    ALLOWED = "allowed"
    CLAMPED = "clamped"
    BLOCKED = "blocked"


class SafetyState(StrEnum):
    NORMAL = "normal"  # nothing restricts dispatch beyond power limits
    LIMITED = "limited"  # a latched condition blocks one or both directions
    SAFE = "safe"  # fail-safe: no dispatch at all (stale data, lost device, failed write)


@dataclass(frozen=True, slots=True)
class GuardDecision:
    requested_w: float
    setpoint_w: float
    outcome: Outcome
    reason: str
    binding_limit: str | None = None


@dataclass(frozen=True, slots=True)
class Latch:
    name: str
    blocks_charge: bool
    blocks_discharge: bool
    reason: str


class SafetyGuard:
    def __init__(self, safety: SafetyConfig, battery: BatteryConfig) -> None:
        self.safety = safety
        self.battery = battery
        self.latches: dict[str, Latch] = {}

    # -- assess: update latched conditions once per cycle --------------------------------------

    def assess(self, m: Measurements) -> list[Latch]:
        s = self.safety
        temp = m.battery_temp_c
        if temp is not None:
            self._hysteresis(
                "temp_high",
                on=temp >= s.temp_max_c,
                off=temp <= s.temp_max_c - s.temp_hysteresis_c,
                latch=Latch(
                    "temp_high",
                    True,
                    True,
                    f"battery temperature {temp:.1f} °C at or above the {s.temp_max_c:g} °C limit",
                ),
            )
            self._hysteresis(
                "temp_low",
                on=temp <= s.temp_min_c,
                off=temp >= s.temp_min_c + s.temp_hysteresis_c,
                latch=Latch(
                    "temp_low",
                    True,
                    True,
                    f"battery temperature {temp:.1f} °C at or below the {s.temp_min_c:g} °C limit",
                ),
            )
        soc = m.soc_pct
        if soc is not None:
            self._hysteresis(
                "soc_high",
                on=soc >= s.soc_max_pct,
                off=soc <= s.soc_max_pct - s.soc_hysteresis_pct,
                latch=Latch(
                    "soc_high", True, False, f"SOC {soc:.1f} % at or above {s.soc_max_pct:g} %"
                ),
            )
            self._hysteresis(
                "soc_low",
                on=soc <= s.soc_min_pct,
                off=soc >= s.soc_min_pct + s.soc_hysteresis_pct,
                latch=Latch(
                    "soc_low", False, True, f"SOC {soc:.1f} % at or below {s.soc_min_pct:g} %"
                ),
            )
        blocking = [a for a in m.alarms if any(a.startswith(p) for p in s.blocking_alarms)]
        if m.battery_status == "fault":
            blocking.append("battery running status: fault")
        if blocking:
            self.latches["alarm"] = Latch(
                "alarm", True, True, "device alarm: " + "; ".join(blocking)
            )
        else:
            self.latches.pop("alarm", None)
        return list(self.latches.values())

    def _hysteresis(self, name: str, *, on: bool, off: bool, latch: Latch) -> None:
        if on:
            self.latches[name] = latch
        elif name in self.latches:
            if off:
                del self.latches[name]
            else:
                self.latches[name] = latch  # keep it, with the current value in the reason

    @property
    def state(self) -> SafetyState:
        return SafetyState.LIMITED if self.latches else SafetyState.NORMAL

    def blocked(self, failsafe: bool) -> DirectionBlock:
        """The directions the battery must not move in now: both in fail-safe, else those a
        latched condition blocks. The device holds them whatever its own working mode."""
        if failsafe:
            return HOLD_BOTH
        return DirectionBlock(
            charge=any(latch.blocks_charge for latch in self.latches.values()),
            discharge=any(latch.blocks_discharge for latch in self.latches.values()),
        )

    # -- check: apply limits to one request, without side effects -----------------------------

    def power_limit_w(self, m: Measurements, charging: bool) -> tuple[float, str]:
        """The smallest power limit in force for a direction, and its name."""
        s, b = self.safety, self.battery
        candidates: list[tuple[float, str]] = []
        if charging:
            candidates.append((b.max_charge_w, "battery.max_charge_w"))
            if s.max_charge_w is not None:
                candidates.append((s.max_charge_w, "safety.max_charge_w"))
            if m.max_charge_w is not None:
                candidates.append((m.max_charge_w, m.source("max_charge_w")))
            if m.charge_limit_setting_w is not None:
                candidates.append((m.charge_limit_setting_w, m.source("charge_limit_setting_w")))
        else:
            candidates.append((b.max_discharge_w, "battery.max_discharge_w"))
            if s.max_discharge_w is not None:
                candidates.append((s.max_discharge_w, "safety.max_discharge_w"))
            if m.max_discharge_w is not None:
                candidates.append((m.max_discharge_w, m.source("max_discharge_w")))
            if m.discharge_limit_setting_w is not None:
                candidates.append(
                    (m.discharge_limit_setting_w, m.source("discharge_limit_setting_w"))
                )
        return min(candidates, key=lambda c: c[0])

    def check(self, m: Measurements, requested_w: float) -> GuardDecision:
        """Allow, clamp or block `requested_w` (W, > 0 charge) on these measurements."""
        if requested_w != requested_w:  # NaN from a broken controller is never sent
            return GuardDecision(requested_w, 0.0, Outcome.BLOCKED, "request is not a number")
        if requested_w == 0:
            return GuardDecision(0.0, 0.0, Outcome.ALLOWED, "stop is always allowed")
        charging = requested_w > 0
        reason = self._blocking_reason(m, charging)
        if reason is not None:
            return GuardDecision(requested_w, 0.0, Outcome.BLOCKED, reason)

        setpoint_w = requested_w
        binding: str | None = None
        limit_w, limit_name = self.power_limit_w(m, charging)
        if abs(setpoint_w) > limit_w:
            setpoint_w = limit_w if charging else -limit_w
            binding = f"{limit_name} = {limit_w:g} W"
        room = self._grid_room(m, charging, setpoint_w)
        if isinstance(room, str):
            return GuardDecision(requested_w, 0.0, Outcome.BLOCKED, room)
        if room is not None:
            setpoint_w, binding = room

        if setpoint_w == requested_w:
            return GuardDecision(requested_w, setpoint_w, Outcome.ALLOWED, "within all limits")
        return GuardDecision(
            requested_w, setpoint_w, Outcome.CLAMPED, f"clamped by {binding}", binding
        )

    def _blocking_reason(self, m: Measurements, charging: bool) -> str | None:
        """Why nothing in this direction may pass (stale data, a latch), or None."""
        missing = [
            name
            for name, value in (
                ("soc_pct", m.soc_pct),
                ("battery_temp_c", m.battery_temp_c),
                ("battery_power_w", m.battery_power_w),
            )
            if value is None
        ]
        if missing:
            return f"stale or missing data: {', '.join(missing)}"
        for latch in self.latches.values():
            if (charging and latch.blocks_charge) or (not charging and latch.blocks_discharge):
                return latch.reason
        return None

    def _grid_room(
        self, m: Measurements, charging: bool, setpoint_w: float
    ) -> tuple[float, str] | str | None:
        """The grid connection limits: a reduced (setpoint, binding limit), a blocking reason,
        or None when they do not bind."""
        s = self.safety
        if s.grid_import_max_w is None and s.grid_export_max_w is None:
            return None
        if m.grid_power_w is None or m.battery_power_w is None:
            return "grid limits cannot be checked: meter data stale or missing"
        # What the site would draw without the battery; the battery adds its setpoint to it.
        base_w = m.grid_power_w - m.battery_power_w
        if charging and s.grid_import_max_w is not None:
            room_w = s.grid_import_max_w - base_w
            name = f"safety.grid_import_max_w = {s.grid_import_max_w:g} W"
            if setpoint_w > room_w:
                return f"grid import would exceed {name}" if room_w <= 0 else (room_w, name)
        if not charging and s.grid_export_max_w is not None:
            room_w = s.grid_export_max_w + base_w
            name = f"safety.grid_export_max_w = {s.grid_export_max_w:g} W"
            if -setpoint_w > room_w:
                return f"grid export would exceed {name}" if room_w <= 0 else (-room_w, name)
        return None


def verdict(
    guard: SafetyGuard,
    failsafe_reason: str | None,
    m: Measurements | None,
    requested_w: float,
) -> GuardDecision:
    """May `requested_w` reach the device now? The single decision every path asks.

    In fail-safe nothing but a stop passes; without measurements nothing but a stop passes;
    otherwise the guard allows, clamps or blocks on the measurements."""
    if failsafe_reason is not None:
        outcome = Outcome.BLOCKED if requested_w != 0 else Outcome.ALLOWED
        return GuardDecision(requested_w, 0.0, outcome, f"fail-safe: {failsafe_reason}")
    if m is None:
        if requested_w == 0:
            return GuardDecision(0.0, 0.0, Outcome.ALLOWED, "stop is always allowed")
        return GuardDecision(
            requested_w, 0.0, Outcome.BLOCKED, "no measurements yet: the site has not cycled"
        )
    return guard.check(m, requested_w)
