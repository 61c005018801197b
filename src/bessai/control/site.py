"""One site's control cycle: acquire -> assess -> decide -> guard -> act -> emit, on a fixed
period with drift compensation (a slow cycle is measured and reported, never stacked).

Fail-safe: data older than `safety.stale_after_s`, a lost device, a failed or unverified write,
or an operator's "safe" mode put the site in SAFE: dispatch stops (47100 = 0 where the device
still answers) until the data has been good for `safety.recovery_cycles` cycles. The device-side
forcible period guarantees the inverter stops on its own if this process dies.
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
from bessai.control.image import ImageBuilder, ProcessImage
from bessai.control.safety import GuardDecision, Outcome, SafetyGuard, SafetyState
from bessai.devices.huawei import Forcible, HuaweiDispatcher, Measurements, measurements
from bessai.errors import DeviceError
from bessai.modbus.client import ClientSettings, ModbusDevice, WriteResult
from bessai.modbus.profile import PollGroup, load_profile
from bessai.observe.metrics import SAFETY_STATE_VALUE, GatewayMetrics
from bessai.telemetry.tracing import tracer

log = structlog.get_logger("bessai.control")


class SiteMode(StrEnum):
    AUTO = "auto"  # controllers decide
    MANUAL = "manual"  # only the manual override may dispatch
    SAFE = "safe"  # operator-forced fail-safe


@dataclass(frozen=True, slots=True)
class CycleRecord:
    """What one cycle saw and did: the snapshot status, metrics, health and telemetry use."""

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
    writes: tuple[WriteResult, ...]
    device_connected: bool
    data_age_s: float | None
    errors: tuple[str, ...]
    mode: SiteMode


@dataclass(slots=True)
class SiteCounters:
    cycles: int = 0
    overruns: int = 0
    blocks: int = 0
    clamps: int = 0
    restarts: int = 0
    durations_s: list[float] = field(default_factory=list)


def device_settings(site: SiteConfig) -> ClientSettings:
    d = site.device
    return ClientSettings(
        wait_after_connect_s=d.wait_after_connect_s,
        cooldown_s=d.cooldown_s,
        timeout_s=d.timeout_s,
        retries=d.retries,
        reconnect_backoff_max_s=d.reconnect_backoff_max_s,
    )


class SiteRunner:
    def __init__(
        self,
        config: SiteConfig,
        audit: AuditLog,
        metrics: GatewayMetrics | None = None,
        settings: ClientSettings | None = None,
    ) -> None:
        self.config = config
        self.id = config.id
        self.audit = audit
        self.metrics = metrics
        d = config.device
        self.device = ModbusDevice(
            d.host,
            d.port,
            d.unit_id,
            [load_profile(name) for name in d.profiles],
            settings or device_settings(config),
            name=f"{config.id}/{d.host}:{d.port}/{d.unit_id}",
        )
        self.dispatcher = HuaweiDispatcher(self.device, config.dispatch)
        self.guard = SafetyGuard(config.safety, config.battery)
        self.override = ManualOverride(
            config.controllers.manual_override_default_s, config.controllers.manual_override_max_s
        )
        self.grid_event = GridEventSlot()
        self.schedule = ScheduleController()
        self.time_of_use = TimeOfUseRules(
            [(*rule.times, rule.setpoint_w) for rule in config.controllers.time_of_use],
            ZoneInfo(config.timezone),
        )
        self.builder = ImageBuilder(
            config.id,
            config.safety.stale_after_s,
            config.safety.stale_after_s + config.slow_every * config.cycle_s,
        )
        self.mode = SiteMode.AUTO
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

    @property
    def controllers(self) -> list[Controller]:
        if self.mode is SiteMode.MANUAL:
            return [self.override]
        return [self.override, self.grid_event, self.schedule, self.time_of_use]

    @property
    def failsafe_reason(self) -> str | None:
        if self.mode is SiteMode.SAFE:
            return "operator set the site to safe mode"
        return self._failsafe_reason

    @property
    def safety_state(self) -> SafetyState:
        if self.failsafe_reason is not None:
            return SafetyState.SAFE
        return self.guard.state

    # -- the cycle ----------------------------------------------------------------------------

    async def _acquire(self) -> tuple[list[str], bool]:
        groups = {PollGroup.FAST}
        slow_due = self._cycle % self.config.slow_every == 1 or self.config.slow_every == 1
        if slow_due:
            groups.add(PollGroup.SLOW)
        errors: list[str] = []
        try:
            result = await self.device.poll(groups)
        except DeviceError as exc:
            errors.append(str(exc))
            return errors, False
        self.builder.update(result)
        errors.extend(result.errors)
        if slow_due:
            self.dispatcher.sync_from_device()
        return errors, True

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
            if self._failsafe_reason is None:
                log.critical("entering SAFE", site=self.id, reason=problem)
            self._failsafe_reason = problem
            self._good_streak = 0
        elif self._failsafe_reason is not None:
            if critical_ok:
                self._good_streak += 1
            if self._good_streak >= self.config.safety.recovery_cycles:
                log.warning("leaving SAFE", site=self.id, after_cycles=self._good_streak)
                self._failsafe_reason = None
        self.guard.assess(m)
        return data_age_s if self._last_good_mono is not None else None

    async def _startup(self, m: Measurements) -> list[WriteResult]:
        """Once, after the first good read: align the inverter's cutoffs with our limits."""
        self._startup_done = True
        if not self.config.dispatch.align_cutoffs:
            return []
        s = self.config.safety
        try:
            return await self.dispatcher.align_cutoffs(s.soc_min_pct, s.soc_max_pct)
        except DeviceError as exc:
            log.error("could not align the inverter's cutoff SOCs", site=self.id, error=str(exc))
            return []

    async def _act(self, decision: GuardDecision) -> tuple[list[WriteResult], str | None]:
        try:
            if self.failsafe_reason is not None:
                return await self.dispatcher.stop(), None
            result = await self.dispatcher.apply(decision.setpoint_w)
            return list(result.writes), None
        except DeviceError as exc:
            error = str(exc)
            log.error("command failed; stopping dispatch", site=self.id, error=error)
            try:
                await self.dispatcher.stop()
            except DeviceError as stop_exc:
                log.error("stop failed too", site=self.id, error=str(stop_exc))
            return [], error

    async def step(self) -> CycleRecord:
        with tracer().start_as_current_span("cycle", attributes={"site": self.id}) as span:
            record = await self._step()
            span.set_attribute("cycle", record.cycle)
            span.set_attribute("safety_state", record.safety_state.value)
            span.set_attribute("controller", record.proposal.controller)
            span.set_attribute("setpoint_w", record.decision.setpoint_w)
            span.set_attribute("writes", len(record.writes))
            return record

    async def _step(self) -> CycleRecord:
        started = time.monotonic()
        self._cycle += 1
        errors, answering = await self._acquire()
        # The snapshot is taken after acquisition: a slow or failed read ages the data it kept.
        now = datetime.now(UTC)
        image = self.builder.freeze(self._cycle, now)
        m = measurements(image)
        data_age_s = self._assess(m, time.monotonic())
        writes: list[WriteResult] = []
        found_forcible = None
        if not self._startup_done and data_age_s is not None:
            self.dispatcher.sync_from_device()
            found_forcible = self.dispatcher.state.command
            writes.extend(await self._startup(m))

        proposal = decide(self.controllers, now)
        failsafe = self.failsafe_reason
        if failsafe is not None:
            decision = GuardDecision(
                proposal.setpoint_w,
                0.0,
                Outcome.BLOCKED if proposal.setpoint_w else Outcome.ALLOWED,
                f"fail-safe: {failsafe}",
            )
        else:
            decision = self.guard.check(m, proposal.setpoint_w)
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

        if answering:
            act_writes, act_error = await self._act(decision)
        else:
            # A device that did not answer the read will not take a write either; trying would
            # only stretch the cycle. Its own forcible period stops it; once it answers again,
            # the stop goes out (the dispatcher still holds the last known command).
            act_writes, act_error = [], None
        writes.extend(act_writes)
        self._act_error = act_error
        if act_error is not None:
            errors.append(act_error)
            self._assess(m, time.monotonic())

        reason = proposal.reason
        if found_forcible not in (None, int(Forcible.STOP)) and any(
            w.point.name == "forcible_command" and w.registers == (0,) for w in writes
        ):
            kind = "charge" if found_forcible == Forcible.CHARGE else "discharge"
            reason = f"stopped a forcible {kind} found at start that no decision justifies"
            log.warning(reason, site=self.id)
        await self._audit(now, proposal, decision, writes, act_error, reason)

        record = CycleRecord(
            site_id=self.id,
            cycle=self._cycle,
            ts=now,
            duration_s=time.monotonic() - started,
            measurements=m,
            image=image,
            safety_state=self.safety_state,
            safety_reasons=tuple(
                ([failsafe] if failsafe else [])
                + [latch.reason for latch in self.guard.latches.values()]
            ),
            proposal=proposal,
            decision=decision,
            writes=tuple(writes),
            device_connected=self.device.connected,
            data_age_s=data_age_s,
            errors=tuple(errors),
            mode=self.mode,
        )
        self.last = record
        self._record_metrics(record)
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
        writes: list[WriteResult],
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
                    "point": f"{w.profile}.{w.point.name}",
                    "address": w.point.address,
                    "value": w.value,
                    "registers": list(w.registers),
                    "fc": w.function_code,
                    "verified": w.verified,
                }
                for w in writes
            ],
            verified=all(w.verified or not w.point.readable for w in writes),
            error=error,
        )
        await asyncio.to_thread(self.audit.append, record)

    def _record_metrics(self, record: CycleRecord) -> None:
        self.counters.cycles += 1
        self.counters.durations_s.append(record.duration_s)
        if len(self.counters.durations_s) > 10_000:
            del self.counters.durations_s[:5_000]
        if self.metrics is None:
            return
        site = self.id
        mt = self.metrics
        mt.cycles.labels(site).inc()
        mt.cycle_duration.labels(site).observe(record.duration_s)
        if record.decision.outcome is Outcome.BLOCKED:
            mt.safety_blocks.labels(site).inc()
        elif record.decision.outcome is Outcome.CLAMPED:
            mt.safety_clamps.labels(site).inc()
        mt.safety_state.labels(site).set(SAFETY_STATE_VALUE[record.safety_state.value])
        mt.commands.labels(site).inc(len(record.writes))
        if record.data_age_s is not None:
            mt.data_age.labels(site).set(record.data_age_s)
        m = record.measurements
        for name, value in (
            ("soc_pct", m.soc_pct),
            ("battery_power_w", m.battery_power_w),
            ("pv_power_w", m.pv_power_w),
            ("grid_power_w", m.grid_power_w),
            ("load_power_w", m.load_power_w),
            ("battery_temp_c", m.battery_temp_c),
            ("setpoint_w", record.decision.setpoint_w),
        ):
            if value is not None:
                mt.values[name].labels(site).set(value)

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
                if self.metrics is not None:
                    self.metrics.cycle_overruns.labels(self.id).inc()
                next_mono += missed * period_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, next_mono - time.monotonic()))

    async def shutdown(self) -> None:
        """Stop dispatching where the device still answers, then close the connection."""
        try:
            writes = await self.dispatcher.stop()
            if writes:
                await self._audit(
                    datetime.now(UTC),
                    Proposal("shutdown", 0.0, "gateway shutting down"),
                    GuardDecision(0.0, 0.0, Outcome.ALLOWED, "stop is always allowed"),
                    writes,
                    None,
                    "gateway shutting down: dispatch stopped",
                )
        except DeviceError as exc:
            log.error("could not stop dispatch on shutdown", site=self.id, error=str(exc))
        finally:
            await self.device.close()
