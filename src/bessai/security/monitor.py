"""The security monitor of one site: protocol checks, foreign-write re-reads, physics residuals
and the learned score, and the response (alerts with evidence, restore, SAFE, suspect readings).

It implements `bessai.control.watch.Assessor`; the runtime wires it to a site's cycle
(`SiteRunner.assessor`) and to its records (`SiteRunner.listeners`, for the setpoint).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from bessai.config import SecurityConfig
from bessai.control.watch import SecurityAlert, SecurityAssessment
from bessai.devices.base import Acquisition, Measurements, WriteRecord
from bessai.modbus.client import ModbusDevice
from bessai.security.anomaly import AnomalyScorer
from bessai.security.foreign import ForeignWriteWatch, Mismatch
from bessai.security.physics import INVOLVED, PhysicsModel, Residuals, Tolerances
from bessai.security.protocol import ProtocolWatch
from bessai.security.requests import RequestWatch

if TYPE_CHECKING:
    from bessai.control.site import CycleRecord

log = structlog.get_logger("bessai.security")

DELTA_SIGNALS = ("soc_pct", "battery_power_w", "pv_power_w", "inverter_power_w")
#: every reading the planner or the guard may act on
ALL_READINGS = ("soc_pct", "battery_power_w", "pv_power_w", "inverter_power_w", "battery_temp_c")


@dataclass(frozen=True, slots=True)
class SiteGeometry:
    """What the physics checks need to know of the site."""

    capacity_wh: float
    max_power_w: float
    cycle_s: float


@dataclass(slots=True)
class MonitorState:
    """Counters and the recent alerts, for metrics and `/api/v1/status`."""

    alerts_by_kind: Counter[str] = field(default_factory=Counter)
    recent: deque[tuple[int, datetime, SecurityAlert]] = field(
        default_factory=lambda: deque(maxlen=20)
    )
    score: float | None = None
    threshold: float | None = None
    learning: bool = True
    learned_cycles: int = 0


class SecurityMonitor:
    """One site's intrusion detection on the Modbus path (`Assessor`)."""

    def __init__(
        self,
        config: SecurityConfig,
        modbus: ModbusDevice,
        site: SiteGeometry,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self.foreign = ForeignWriteWatch(modbus, config.reread_every)
        self.protocol = ProtocolWatch(modbus.stats, config.connection_losses_per_hour)
        self.physics = PhysicsModel(site.capacity_wh, site.max_power_w)
        blocks = [(b.start, b.end) for p in modbus.profiles.values() for b in p.blocks]
        #: other clients' requests, fed by the Modbus proxy when it serves this site
        self.requests = RequestWatch(blocks)
        self.tolerances = Tolerances(config.tolerance_margin)
        rate = min(0.5, config.false_alarms_per_day * site.cycle_s / 86_400.0)
        self.scorer = AnomalyScorer(config.train_cycles, rate, config.seed)
        self.state = MonitorState()
        self._setpoint_w: float | None = None
        self._last: dict[str, float] = {}
        self._streaks: dict[str, int] = {}
        self._active: set[str] = set()
        self._safe_until = 0
        self._safe_reason: str | None = None
        self._suspect_until = 0
        self._suspect: set[str] = set()

    # -- inputs beside the read ----------------------------------------------------------------

    def observe(self, record: CycleRecord) -> None:
        """A site listener: the setpoint the gateway commanded (what the battery should do)."""
        self._setpoint_w = record.decision.setpoint_w

    # -- the cycle -------------------------------------------------------------------------------

    async def assess(self, cycle: int, acquired: Acquisition) -> SecurityAssessment:
        """Run every check on this cycle's read and decide the response."""
        now_s = self.clock()
        alerts = self.protocol.check(cycle, acquired.answering, now_s)
        alerts.extend(self.requests.drain())
        writes: list[WriteRecord] = []
        mismatches = await self.foreign.check(cycle) if acquired.answering else []
        if mismatches:
            alerts.extend(m.alert() for m in mismatches)
            writes = await self._respond(cycle, mismatches)
        learned = self._physics(cycle, acquired.measurements, now_s, alerts)
        if self.scorer.ready:
            # Once: fitting takes a fraction of a second, off the event loop.
            await asyncio.to_thread(self.scorer.fit)
        self._record(cycle, alerts)
        failsafe = self._safe_reason if cycle < self._safe_until else None
        suspect = tuple(sorted(self._suspect)) if cycle < self._suspect_until else ()
        return SecurityAssessment(
            alerts=tuple(alerts),
            score=self.state.score,
            threshold=self.scorer.threshold,
            learning=not learned,
            failsafe=failsafe,
            writes=tuple(writes),
            suspect=suspect,
        )

    async def _respond(self, cycle: int, mismatches: list[Mismatch]) -> list[WriteRecord]:
        action = self.config.on_foreign_write
        names = ", ".join(f"{m.point.name} ({m.point.address})" for m in mismatches)
        if action == "alert":
            for m in mismatches:  # told once; the value stands
                self.foreign.expected[m.point.name] = m.seen_raw
            return []
        writes, errors = await self.foreign.restore(mismatches)
        log.critical("foreign write to control registers; gateway values restored",
                     registers=names, restored=len(writes), errors=errors)  # fmt: skip
        if action == "safe" or errors:
            self._safe_until = cycle + self.config.safe_hold_cycles
            self._safe_reason = f"foreign write to {names}: values restored, dispatch stopped"
            if errors:
                self._safe_reason = f"foreign write to {names}; restore failed: {errors[0]}"
        return writes

    def _features(self, m: Measurements, r: Residuals) -> list[float]:
        deltas = []
        for name in DELTA_SIGNALS:
            value = getattr(m, name)
            last = self._last.get(name)
            deltas.append(0.0 if value is None or last is None else float(value) - last)
            if value is not None:
                self._last[name] = float(value)
        return r.vector() + deltas

    def _physics(
        self, cycle: int, m: Measurements, now_s: float, alerts: list[SecurityAlert]
    ) -> bool:
        """Residuals, rules and score; returns True once the learned parts are armed."""
        residuals = self.physics.update(m, now_s, self._setpoint_w)
        features = self._features(m, residuals)
        for broken in residuals.out_of_range:
            alerts.append(SecurityAlert("range", "value inside profile limits", broken,
                                        {"reading": broken.split()[0]}))  # fmt: skip
        if self.scorer.learning:
            self.tolerances.learn(residuals)
            self.scorer.learn(features)
            self.state.learned_cycles += 1
            return False
        score = self.scorer.score(features)
        self.state.score = score
        conditions: dict[str, tuple[float, float]] = self.tolerances.broken(residuals)
        threshold = self.scorer.threshold
        if score is not None and threshold is not None and score > threshold:
            conditions["anomaly"] = (score, threshold)
        self._judge(cycle, conditions, alerts)
        return True

    def _judge(
        self, cycle: int, conditions: dict[str, tuple[float, float]], alerts: list[SecurityAlert]
    ) -> None:
        """Alert on a condition held for `persist_cycles` (once per episode) and flag the
        readings involved for the planner."""
        persist = self.config.persist_cycles
        for name in list(self._streaks):
            if name not in conditions:
                self._streaks.pop(name)
                self._active.discard(name)
        for name, (value, limit) in conditions.items():
            streak = self._streaks[name] = self._streaks.get(name, 0) + 1
            if streak < persist:
                continue
            base = name.split(":")[0]
            involved = (
                ALL_READINGS
                if base == "anomaly"
                else (name.split(":")[1],)
                if base == "frozen"
                else INVOLVED[base]
            )
            self._suspect.update(involved)
            self._suspect_until = cycle + persist + 1
            if name in self._active:
                continue
            self._active.add(name)
            kind = "anomaly" if base == "anomaly" else "physics"
            alerts.append(
                SecurityAlert(
                    kind=kind,
                    check=name,
                    message=(
                        f"{name} at {value:.4g} beyond its learned limit {limit:.4g} for "
                        f"{streak} cycles; readings {', '.join(involved)} are not trusted"
                    ),
                    evidence={"check": name, "value": value, "limit": limit, "readings": involved},
                )
            )
        if cycle >= self._suspect_until:
            self._suspect.clear()

    def _record(self, cycle: int, alerts: list[SecurityAlert]) -> None:
        self.state.learning = self.scorer.learning
        self.state.threshold = self.scorer.threshold
        now = datetime.now(UTC)
        for alert in alerts:
            self.state.alerts_by_kind[alert.kind] += 1
            self.state.recent.append((cycle, now, alert))
            log.warning("security alert", kind=alert.kind, check=alert.check,
                        message=alert.message, cycle=cycle)  # fmt: skip

    def status(self) -> dict[str, object]:
        """The monitor's state in plain JSON types (for `/api/v1/status`)."""
        s = self.state
        return {
            "learning": s.learning,
            "learned_cycles": s.learned_cycles,
            "anomaly_score": s.score,
            "threshold": s.threshold,
            "alerts_by_kind": dict(s.alerts_by_kind),
            "tolerances": self.tolerances.as_dict() if not s.learning else None,
            "recent": [
                {
                    "cycle": c,
                    "ts": ts.isoformat(),
                    "kind": a.kind,
                    "check": a.check,
                    "message": a.message,
                    "evidence": {k: _plain(v) for k, v in a.evidence.items()},
                }
                for c, ts, a in s.recent
            ],
        }


def _plain(value: object) -> object:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return str(value)
