"""Does the battery do what it was told? Every cycle compares the measured battery power with
the setpoint last written and the directions the device holds.

- A battery short of its command (same direction) for longer than `alert_after_s`, after the
  settling allowance, is a *deviation*: worth an alert, not a stop (taper near full or empty
  and a firmware that charges from PV only are normal reasons).
- A battery moving *against* its command, beyond it, or in a held direction, for longer than
  `failsafe_after_s`, is a *violation*: the site goes to SAFE and stays there until
  `hold_s` after the last violation, so a device that ignores commands does not flip between
  dispatch and SAFE every few cycles.

Idle (setpoint 0, no held direction) is not judged: then the inverter's own working mode moves
the battery, which is its job.
"""

from __future__ import annotations

from dataclasses import dataclass

from bessai.config import TrackingConfig
from bessai.devices.base import DirectionBlock, Measurements


@dataclass(frozen=True, slots=True)
class TrackingResult:
    """One cycle's judgement. `deviation`/`violation` describe what is wrong now (None when
    nothing is); `failsafe` is the reason the site must be in SAFE (held after a violation)."""

    commanded_w: float
    measured_w: float | None
    settled: bool
    deviation: str | None = None
    deviation_s: float = 0.0
    violation: str | None = None
    failsafe: str | None = None

    @property
    def alert(self) -> str | None:
        """What an operator should be told, if anything."""
        return self.violation or self.deviation


class SetpointTracker:
    def __init__(self, config: TrackingConfig) -> None:
        self.config = config
        self._commanded_w = 0.0
        self._block = DirectionBlock()
        self._since_mono: float | None = None
        self._deviation_since: float | None = None
        self._violation_since: float | None = None
        self._last_violation_mono: float | None = None
        self._failsafe: str | None = None

    def commanded(self, setpoint_w: float, block: DirectionBlock, now_mono: float) -> None:
        """What the device was told this cycle (called only when it answered: a silent device
        still holds the previous command). A change restarts the settling allowance."""
        tolerance_w = self._tolerance_w(setpoint_w)
        changed = abs(setpoint_w - self._commanded_w) > tolerance_w or block != self._block
        if changed or self._since_mono is None:
            self._since_mono = now_mono
            self._deviation_since = None
            self._violation_since = None
        self._commanded_w = setpoint_w
        self._block = block

    def _tolerance_w(self, commanded_w: float) -> float:
        c = self.config
        return max(c.tolerance_w, c.tolerance_pct / 100.0 * abs(commanded_w))

    def _problems(self, m: Measurements, measured_w: float) -> tuple[str | None, str | None]:
        """(violation, deviation) for the measured power against the command and the hold."""
        cmd_w = self._commanded_w
        tol_w = self._tolerance_w(cmd_w)
        block = self._block
        if block.charge and measured_w > tol_w:
            return f"battery charging at {measured_w:.0f} W while charging is blocked", None
        if block.discharge and measured_w < -tol_w:
            return f"battery discharging at {-measured_w:.0f} W while discharging is blocked", None
        if abs(cmd_w) <= tol_w:
            return None, None  # idle: the inverter's own mode decides
        if cmd_w * measured_w < 0 and abs(measured_w) > tol_w:
            return (
                f"battery at {measured_w:.0f} W, opposite to the command of {cmd_w:.0f} W",
                None,
            )
        if abs(measured_w) > abs(cmd_w) + tol_w:
            return f"battery at {measured_w:.0f} W, beyond the command of {cmd_w:.0f} W", None
        if abs(measured_w) < abs(cmd_w) - tol_w and not self._near_limit(m, cmd_w):
            return None, f"battery at {measured_w:.0f} W, short of the command of {cmd_w:.0f} W"
        return None, None

    def _near_limit(self, m: Measurements, cmd_w: float) -> bool:
        """Near full or empty the battery tapers by itself: a shortfall there is expected."""
        if m.soc_pct is None:
            return False
        margin = self.config.taper_margin_pct
        return m.soc_pct >= 100.0 - margin if cmd_w > 0 else m.soc_pct <= margin

    def judge(self, m: Measurements, now_mono: float) -> TrackingResult:
        """Compare this cycle's measured battery power with what the device was told."""
        c = self.config
        measured_w = m.battery_power_w
        since = self._since_mono
        settled = since is not None and now_mono - since >= c.settle_s
        violation = deviation = None
        if c.enabled and settled and measured_w is not None:
            violation, deviation = self._problems(m, measured_w)
        self._deviation_since = self._since(deviation, self._deviation_since, now_mono)
        self._violation_since = self._since(violation, self._violation_since, now_mono)
        persisting_s = None if self._violation_since is None else now_mono - self._violation_since
        if (
            violation is not None
            and persisting_s is not None
            and persisting_s >= c.failsafe_after_s
        ):
            self._failsafe = f"battery does not follow its command: {violation}"
            self._last_violation_mono = now_mono
        last = self._last_violation_mono
        if self._failsafe is not None and last is not None and now_mono - last >= c.hold_s:
            self._failsafe = None
        deviation_s = 0.0 if self._deviation_since is None else now_mono - self._deviation_since
        return TrackingResult(
            commanded_w=self._commanded_w,
            measured_w=measured_w,
            settled=settled,
            deviation=deviation if deviation_s >= c.alert_after_s else None,
            deviation_s=deviation_s,
            violation=violation,
            failsafe=self._failsafe,
        )

    @staticmethod
    def _since(problem: str | None, since: float | None, now_mono: float) -> float | None:
        if problem is None:
            return None
        return now_mono if since is None else since
