"""One site's control cycle: acquire -> assess -> decide -> guard -> act -> emit, on a fixed
period with drift compensation (a slow cycle is measured and reported, never stacked).

The site talks to its device through the vendor-neutral `HybridDevice` interface only, and every
setpoint passes `verdict` (control.safety) before it reaches the device.

Fail-safe: data older than `safety.stale_after_s`, a lost device, a failed or unverified write,
a battery that does not follow its command, or an operator's "safe" mode put the site in SAFE:
dispatch stops and the device holds both directions (where it still answers) until the data has
been good for `safety.recovery_cycles` cycles. The device-side forcible period guarantees the
inverter stops on its own if this process dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from bessai.config import SiteConfig
from bessai.control.audit import AuditLog, AuditRecord
from bessai.control.controllers import (
    Controller,
    GridEventSlot,
    ManualOverride,
    Proposal,
    ScheduleController,
    TimeOfUseRules,
    decide,
)
from bessai.control.learned import LearnedDispatch
from bessai.control.safety import GuardDecision, Latch, Outcome, SafetyGuard, SafetyState, verdict
from bessai.control.state import SavedOverride, SiteMemory, StateStore
from bessai.control.tracking import SetpointTracker, TrackingResult
from bessai.control.watch import Assessor, SecurityAssessment
from bessai.devices.base import (
    HOLD_BOTH,
    NO_BLOCK,
    Acquisition,
    Actuation,
    DirectionBlock,
    HybridDevice,
    Measurements,
    ProcessImage,
    WriteRecord,
)
from bessai.errors import DeviceError
from bessai.telemetry.tracing import tracer

log = structlog.get_logger("bessai.control")


class SiteMode(StrEnum):
    AUTO = "auto"  # controllers decide
    MANUAL = "manual"  # only the manual override may dispatch
    SAFE = "safe"  # operator-forced fail-safe


OPERATOR_SAFE = "operator set the site to safe mode"


@dataclass(frozen=True, slots=True)
class CycleRecord:
    """What one cycle saw and did: the snapshot status, metrics, health, alerts and telemetry
    observe. Observers read this record only; they never reach into the site runner."""

    site_id: str
    cycle: int
    ts: datetime
    duration_s: float
    measurements: Measurements
    image: ProcessImage
    safety_state: SafetyState
    safety_reasons: tuple[str, ...]
    proposal: Proposal
    decision: GuardDecision
    writes: tuple[WriteRecord, ...]
    device_connected: bool
    data_age_s: float | None
    errors: tuple[str, ...]
    mode: SiteMode
    device_name: str = ""
    failsafe_reason: str | None = None
    latches: tuple[Latch, ...] = ()
    #: the directions the device was told to hold this cycle
    block: DirectionBlock = NO_BLOCK
    tracking: TrackingResult | None = None
    overruns: int = 0
    #: the security monitor's verdict, when one is wired
    security: SecurityAssessment | None = None


@dataclass(slots=True)
class _Draft:
    """One cycle's pieces while it runs, before they are frozen into its `CycleRecord`."""

    started: float
    acquired: Acquisition
    data_age_s: float | None = None
    tracking: TrackingResult | None = None
    block: DirectionBlock = NO_BLOCK
    security: SecurityAssessment | None = None
    writes: list[WriteRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ts(self) -> datetime:
        return self.acquired.image.ts


@dataclass(slots=True)
class SiteCounters:
    cycles: int = 0
    overruns: int = 0
    blocks: int = 0
    clamps: int = 0
    restarts: int = 0
    durations_s: list[float] = field(default_factory=list)


class SiteRunner:
    def __init__(
        self,
        config: SiteConfig,
        device: HybridDevice,
        audit: AuditLog,
        store: StateStore | None = None,
    ) -> None:
        self.config = config
        self.id = config.id
        self.audit = audit
        self.device = device
        self.store = store
        self.guard = SafetyGuard(config.safety, config.battery)
        self.tracker = SetpointTracker(config.tracking)
        self.override = ManualOverride(
            config.controllers.manual_override_default_s, config.controllers.manual_override_max_s
        )
        self.grid_event = GridEventSlot()
        self.schedule = ScheduleController()
        #: the learned policy in the plan's place, when `controllers.policy` names one
        self.learned = (
            LearnedDispatch(
                config.controllers.policy,
                config.battery,
                config.controllers.policy_max_ms,
                self.schedule,
            )
            if config.controllers.policy is not None
            else None
        )
        self.time_of_use = TimeOfUseRules(
            [(*rule.times, rule.setpoint_w) for rule in config.controllers.time_of_use],
            ZoneInfo(config.timezone),
        )
        self.mode = SiteMode.AUTO
        self._safe_reason = OPERATOR_SAFE
        self.counters = SiteCounters()
        self.last: CycleRecord | None = None
        self.listeners: list[Callable[[CycleRecord], Any]] = []
        #: awaited at the end of every cycle (the telemetry emit): part of the cycle's time
        self.emitters: list[Callable[[CycleRecord], Awaitable[None]]] = []
        self._cycle = 0
        self._started_mono = time.monotonic()
        self._last_good_mono: float | None = None
        self._failsafe_reason: str | None = None
        self._good_streak = 0
        self._act_error: str | None = None
        self._startup_done = False
        self._last_audited: tuple[str, float, str] | None = None
        #: the security monitor (bessai.security), wired by the runtime; None: not watched
        self.assessor: Assessor | None = None
        self._restore(store)

    # -- operator state ------------------------------------------------------------------------

    def _restore(self, store: StateStore | None) -> None:
        if store is None:
            return
        if store.damaged is not None:
            self.mode = SiteMode.SAFE
            self._safe_reason = f"operator state lost at start ({store.damaged}); set the mode"
            return
        memory = store.get(self.id)
        if memory is None:
            return
        self.mode = SiteMode(memory.mode)
        saved = memory.override
        if saved is not None and saved.until_utc > datetime.now(UTC):
            self.override.restore(saved.setpoint_w, saved.until_utc, saved.reason)
        self.device.restore_memory(memory.device_held)
        log.info("operator state restored", site=self.id, mode=self.mode.value,
                 override=saved is not None, device_held=sorted(memory.device_held))  # fmt: skip

    def _memory(self) -> SiteMemory:
        until, setpoint = self.override.until, self.override.setpoint_w
        saved = (
            SavedOverride(setpoint, until, self.override.reason)
            if until is not None and setpoint is not None
            else None
        )
        return SiteMemory(self.mode.value, saved, dict(self.device.limits_held()))

    async def _save(self) -> None:
        if self.store is not None:
            await asyncio.to_thread(self.store.save, self.id, self._memory())

    async def set_mode(self, mode: SiteMode) -> SiteMode:
        """Change the operating mode (persisted); returns the previous one."""
        previous, self.mode = self.mode, mode
        self._safe_reason = OPERATOR_SAFE
        await self._save()
        return previous

    async def install_override(
        self, setpoint_w: float, duration_s: float | None, reason: str
    ) -> datetime:
        """A manual setpoint that expires by itself (persisted with its expiry)."""
        until = self.override.set(setpoint_w, datetime.now(UTC), duration_s, reason)
        await self._save()
        return until

    async def clear_override(self) -> bool:
        had = self.override.setpoint_w is not None
        self.override.clear()
        await self._save()
        return had

    # -- the safety view -----------------------------------------------------------------------

    @property
    def controllers(self) -> list[Controller]:
        if self.mode is SiteMode.MANUAL:
            return [self.override]
        planned: Controller = self.schedule if self.learned is None else self.learned
        return [self.override, self.grid_event, planned, self.time_of_use]

    @property
    def failsafe_reason(self) -> str | None:
        if self.mode is SiteMode.SAFE:
            return self._safe_reason
        return self._failsafe_reason

    @property
    def safety_state(self) -> SafetyState:
        if self.failsafe_reason is not None:
            return SafetyState.SAFE
        return self.guard.state

    def verdict(self, requested_w: float, m: Measurements | None = None) -> GuardDecision:
        """May `requested_w` reach this site's device now? `m`: this cycle's measurements;
        by default the last cycle's. Every path that can move the battery asks this."""
        if m is None and self.last is not None:
            m = self.last.measurements
        return verdict(self.guard, self.failsafe_reason, m, requested_w)

    # -- the cycle ----------------------------------------------------------------------------

    def _enter_safe(self, problem: str) -> None:
        if self._failsafe_reason is None:
            log.critical("entering SAFE", site=self.id, reason=problem)
        self._failsafe_reason = problem
        self._good_streak = 0

    def _assess(self, m: Measurements, now_mono: float) -> float | None:
        critical_ok = None not in (m.soc_pct, m.battery_power_w, m.battery_temp_c)
        if critical_ok:
            self._last_good_mono = now_mono
        reference = self._last_good_mono if self._last_good_mono is not None else self._started_mono
        data_age_s = now_mono - reference
        stale_after_s = self.config.safety.stale_after_s
        problem: str | None = None
        if data_age_s > stale_after_s:
            problem = (
                f"no good battery data for {data_age_s:.0f} s (limit {stale_after_s:g} s)"
                if self._last_good_mono is not None
                else f"no battery data since start ({data_age_s:.0f} s)"
            )
        elif self._act_error is not None:
            problem = f"last command failed: {self._act_error}"
        if problem is not None:
            self._enter_safe(problem)
        elif self._failsafe_reason is not None:
            if critical_ok:
                self._good_streak += 1
            if self._good_streak >= self.config.safety.recovery_cycles:
                log.warning("leaving SAFE", site=self.id, after_cycles=self._good_streak)
                self._failsafe_reason = None
        self.guard.assess(m)
        return data_age_s if self._last_good_mono is not None else None

    async def _take_over(self) -> tuple[str | None, list[WriteRecord]]:
        """Once, after the first good read: what the device holds, and its cutoffs aligned."""
        self._startup_done = True
        s = self.config.safety
        try:
            taken = await self.device.take_over(s.soc_min_pct, s.soc_max_pct)
        except DeviceError as exc:
            log.error("could not align the inverter's cutoff SOCs", site=self.id, error=str(exc))
            return None, []
        found = None if taken.found_command is None else taken.found_command.value
        writes = list(taken.writes) if self.config.dispatch.align_cutoffs else []
        return found, writes

    async def _act(
        self, decision: GuardDecision, block: DirectionBlock
    ) -> tuple[Actuation, str | None]:
        try:
            if self.failsafe_reason is not None:
                return await self.device.stop(block), None
            return await self.device.apply(decision.setpoint_w, block), None
        except DeviceError as exc:
            error = str(exc)
            log.error("command failed; stopping dispatch", site=self.id, error=error)
            try:
                return await self.device.stop(HOLD_BOTH), error
            except DeviceError as stop_exc:
                log.error("stop failed too", site=self.id, error=str(stop_exc))
            return Actuation(), error

    async def step(self) -> CycleRecord:
        with tracer().start_as_current_span("cycle", attributes={"site": self.id}) as span:
            record = await self._step()
            span.set_attribute("cycle", record.cycle)
            span.set_attribute("safety_state", record.safety_state.value)
            span.set_attribute("controller", record.proposal.controller)
            span.set_attribute("setpoint_w", record.decision.setpoint_w)
            span.set_attribute("writes", len(record.writes))
            return record

    async def _acquire(self) -> Acquisition:
        slow_every = self.config.slow_every
        slow_due = slow_every == 1 or self._cycle % slow_every == 1
        return await self.device.acquire(self._cycle, slow_due)

    def _count(self, proposal: Proposal, decision: GuardDecision, m: Measurements) -> None:
        if decision.outcome is Outcome.BLOCKED:
            self.counters.blocks += 1
            log.critical(
                "request blocked",
                site=self.id,
                controller=proposal.controller,
                requested_w=proposal.setpoint_w,
                reason=decision.reason,
                soc_pct=m.soc_pct,
                battery_temp_c=m.battery_temp_c,
                battery_power_w=m.battery_power_w,
                grid_power_w=m.grid_power_w,
            )
        elif decision.outcome is Outcome.CLAMPED:
            self.counters.clamps += 1

    def _track(self, m: Measurements, now_mono: float) -> TrackingResult:
        """Judge the battery by what it does: a command it ignores or inverts, or movement in a
        blocked direction, is found here from the measured power."""
        result = self.tracker.judge(m, now_mono)
        if result.failsafe is not None:
            self._enter_safe(result.failsafe)
        return result

    async def _step(self) -> CycleRecord:
        self._cycle += 1
        draft = _Draft(time.monotonic(), await self._acquire())
        m = draft.acquired.measurements
        draft.errors.extend(draft.acquired.errors)
        draft.data_age_s = self._assess(m, time.monotonic())
        draft.tracking = self._track(m, time.monotonic())
        await self._watch(draft)
        found: str | None = None
        if not self._startup_done and draft.data_age_s is not None:
            found, startup_writes = await self._take_over()
            draft.writes.extend(startup_writes)

        if self.learned is not None:
            self.learned.see(m)
        proposal = decide(self.controllers, draft.ts)
        if self.mode is SiteMode.AUTO:
            # A grid event's capacity limit bounds what the controllers below it ask.
            proposal = self.grid_event.constrain(proposal, m, draft.ts)
        decision = self.verdict(proposal.setpoint_w, m)
        self._count(proposal, decision, m)
        draft.block = self.guard.blocked(failsafe=self.failsafe_reason is not None)
        actuation, act_error = await self._act_and_track(draft, decision)
        if act_error is not None:
            draft.errors.append(act_error)
            self._assess(m, time.monotonic())

        reason = proposal.reason
        if found is not None and actuation.stopped:
            reason = f"stopped a forcible {found} found at start that no decision justifies"
            log.warning(reason, site=self.id)
        await self._audit(draft.ts, proposal, decision, draft.writes, act_error, reason)
        return await self._finish(draft, proposal, decision)

    async def _watch(self, draft: _Draft) -> None:
        """Ask the security monitor about this read; a high-confidence event puts the site in
        SAFE (after the monitor restored the gateway's register values, audited here)."""
        if self.assessor is None:
            return
        assessment = await self.assessor.assess(self._cycle, draft.acquired)
        draft.security = assessment
        draft.writes.extend(assessment.writes)
        if assessment.failsafe is not None:
            self._enter_safe(assessment.failsafe)

    async def _act_and_track(
        self, draft: _Draft, decision: GuardDecision
    ) -> tuple[Actuation, str | None]:
        """Act on the verdict (when the device answered the read), tell the tracker what the
        device now holds, and save the held settings when they changed."""
        held_before = dict(self.device.limits_held())
        if not draft.acquired.answering:
            # A device that did not answer the read will not take a write either; trying would
            # only stretch the cycle. Its own forcible period stops it; once it answers again,
            # the stop goes out (the device still knows the last command it wrote).
            self._act_error = None
            return Actuation(), None
        actuation, act_error = await self._act(decision, draft.block)
        draft.writes.extend(actuation.writes)
        if act_error is not None:  # the stop that followed holds both directions
            self.tracker.commanded(0.0, HOLD_BOTH, time.monotonic())
        else:
            self.tracker.commanded(decision.setpoint_w, draft.block, time.monotonic())
        if dict(self.device.limits_held()) != held_before:
            await self._save()
        self._act_error = act_error
        return actuation, act_error

    async def _finish(
        self, draft: _Draft, proposal: Proposal, decision: GuardDecision
    ) -> CycleRecord:
        failsafe = self.failsafe_reason
        latches = tuple(self.guard.latches.values())
        record = CycleRecord(
            site_id=self.id,
            cycle=self._cycle,
            ts=draft.ts,
            duration_s=time.monotonic() - draft.started,
            measurements=draft.acquired.measurements,
            image=draft.acquired.image,
            safety_state=self.safety_state,
            safety_reasons=tuple(([failsafe] if failsafe else []) + [x.reason for x in latches]),
            proposal=proposal,
            decision=decision,
            writes=tuple(draft.writes),
            device_connected=self.device.connected,
            data_age_s=draft.data_age_s,
            errors=tuple(draft.errors),
            mode=self.mode,
            device_name=self.device.name,
            failsafe_reason=failsafe,
            latches=latches,
            block=draft.block,
            tracking=draft.tracking,
            overruns=self.counters.overruns,
            security=draft.security,
        )
        self.last = record
        self.counters.cycles += 1
        self.counters.durations_s.append(record.duration_s)
        if len(self.counters.durations_s) > 10_000:
            del self.counters.durations_s[:5_000]
        for listener in self.listeners:
            listener(record)
        for emit in self.emitters:
            await emit(record)
        return record

    async def _audit(
        self,
        now: datetime,
        proposal: Proposal,
        decision: GuardDecision,
        writes: list[WriteRecord],
        error: str | None,
        reason: str,
    ) -> None:
        # Every write is audited; an unchanged decision without writes is not, or the log
        # would hold one identical line per cycle.
        signature = (proposal.controller, round(decision.setpoint_w), decision.outcome.value)
        if not writes and error is None and signature == self._last_audited:
            return
        self._last_audited = signature
        record = AuditRecord(
            ts=now,
            site=self.id,
            controller=proposal.controller,
            reason=reason,
            requested_w=proposal.setpoint_w,
            setpoint_w=decision.setpoint_w,
            outcome=decision.outcome.value,
            guard_reason=decision.reason,
            binding_limit=decision.binding_limit,
            writes=[
                {
                    "point": w.point,
                    "address": w.address,
                    "value": w.value,
                    "registers": list(w.registers),
                    "fc": w.function_code,
                    "verified": w.verified,
                }
                for w in writes
            ],
            verified=all(w.confirmed for w in writes),
            error=error,
        )
        await asyncio.to_thread(self.audit.append, record)

    # -- running ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Cycle until `stop` is set. A slow cycle is counted and the missed slots skipped."""
        period_s = self.config.cycle_s
        next_mono = time.monotonic()
        while not stop.is_set():
            await self.step()
            next_mono += period_s
            now_mono = time.monotonic()
            if now_mono > next_mono:
                missed = int((now_mono - next_mono) // period_s) + 1
                self.counters.overruns += 1
                next_mono += missed * period_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, next_mono - time.monotonic()))

    def hazard_block(self) -> DirectionBlock:
        """What stays held when the gateway stops: fail-safe, heat, cold and alarms. A full or
        empty battery is left to the inverter's own cutoffs (aligned at start)."""
        if self.failsafe_reason is not None:
            return HOLD_BOTH
        hazards = [x for name, x in self.guard.latches.items() if not name.startswith("soc_")]
        return DirectionBlock(
            charge=any(x.blocks_charge for x in hazards),
            discharge=any(x.blocks_discharge for x in hazards),
        )

    async def shutdown(self) -> None:
        """Stop dispatching where the device still answers, then close the connection."""
        try:
            stopped = await self.device.stop(self.hazard_block())
            await self._save()
            if stopped.writes:
                await self._audit(
                    datetime.now(UTC),
                    Proposal("shutdown", 0.0, "gateway shutting down"),
                    GuardDecision(0.0, 0.0, Outcome.ALLOWED, "stop is always allowed"),
                    list(stopped.writes),
                    None,
                    "gateway shutting down: dispatch stopped",
                )
        except DeviceError as exc:
            log.error("could not stop dispatch on shutdown", site=self.id, error=str(exc))
        finally:
            await self.device.close()
