"""The learned-policy controller (`controllers.policy = "onnx:DIR"`): builds the observation from
the cycle's measurements and the planner's forecast, runs the exported policy with onnxruntime,
and proposes its setpoint, which then passes the one safety verdict like any other.

When the policy cannot be trusted for this decision it falls back to the optimizer's plan (the
schedule controller) and the proposal's reason says why: the model is missing or unusable, its
card does not match the site, it answered too slowly, it answered NaN, or there is no
measurement or forecast to build the observation from."""

from __future__ import annotations

from collections import Counter, deque
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from bessai.config import BatteryConfig
from bessai.control.controllers import Proposal, ScheduleController
from bessai.devices.base import Measurements
from bessai.errors import PolicyError
from bessai.policy.observation import SiteView, observation

if TYPE_CHECKING:
    from bessai.policy.runner import OnnxPolicy


def _load(spec: str) -> OnnxPolicy:
    # onnxruntime loads with the first site that runs a policy, not with every `bessai` start.
    from bessai.policy.runner import OnnxPolicy

    return OnnxPolicy(Path(spec.removeprefix("onnx:")))


log = structlog.get_logger("bessai.policy")

#: decision latencies kept for the p99 the status and benchmarks report
LATENCY_WINDOW = 1000


def duration_h(battery: BatteryConfig) -> float:
    """Hours the battery holds at full discharge power: what a policy's card is checked on."""
    return battery.capacity_kwh * 1000.0 / battery.max_discharge_w


def policy_notes(
    spec: str,
    battery: BatteryConfig,
    step: timedelta,
    unit: str,
    forecaster: str | None,
    wear_cost_per_mwh: float,
) -> list[str]:
    """What `bessai config check` says of the policy `spec` on a site before the gateway
    starts, loading it once: why it would not dispatch (it would fall back to the plan for
    good), and a wear cost the site counts that the policy was not trained with (it still
    dispatches: the choice is the operator's)."""
    try:
        policy = _load(spec)
    except PolicyError as exc:
        return [f"model missing or unusable: {exc}; the plan dispatches instead"]
    notes = []
    hours = step.total_seconds() / 3600.0
    mismatch = policy.card.mismatch(hours, unit, duration_h(battery), forecaster)
    if mismatch is not None:
        notes.append(f"card does not match the site: {mismatch}; the plan dispatches instead")
    if wear_cost_per_mwh > 0 and policy.card.trained_without_wear():
        notes.append(
            f"trained without a wear cost, the site's optimizer counts {wear_cost_per_mwh:.3g} "
            "per MWh of cell throughput: the policy cycles as if wear were free "
            "(docs/policy.md)"
        )
    return notes


class FallbackError(Exception):
    """This decision cannot come from the policy: `kind` (missing, card, slow, nan, input) and
    why, in words."""

    def __init__(self, kind: str, why: str) -> None:
        super().__init__(why)
        self.kind = kind
        self.why = why


class LearnedDispatch:
    """Proposes the policy's setpoint, or the plan's with the reason the policy was not used."""

    name = "policy"

    def __init__(
        self, spec: str, battery: BatteryConfig, max_ms: float, plan: ScheduleController
    ) -> None:
        self.plan = plan
        self.battery = battery
        self.max_ms = max_ms
        self.policy: OnnxPolicy | None = None
        #: a problem that holds for every decision (missing model, card mismatch)
        self.problem: tuple[str, str] | None = None
        try:
            self.policy = _load(spec)
        except PolicyError as exc:
            self._broken("missing", f"model missing or unusable: {exc}")
        self._forecast: tuple[float, ...] = ()
        self._start: datetime | None = None
        self._created: datetime | None = None
        self._step = timedelta(hours=1)
        self._measured: Measurements | None = None
        self.latencies_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.fallbacks: Counter[str] = Counter()
        self.decisions = 0
        self._last_kind: str | None = None

    def _broken(self, kind: str, why: str) -> None:
        self.problem = (kind, why)
        log.error("learned policy disabled; the plan dispatches", kind=kind, reason=why)

    def fit(self, step: timedelta, price_unit: str, forecaster: str | None = None) -> None:
        """Check the card against the site (the planner's price step, unit and forecaster, the
        battery's duration at full power); a mismatch disables the policy with its reason."""
        self._step = step
        if self.policy is None:
            return
        hours = step.total_seconds() / 3600.0
        mismatch = self.policy.card.mismatch(
            hours, price_unit, duration_h(self.battery), forecaster
        )
        if mismatch is not None:
            self._broken("card", f"card does not match the site: {mismatch}")

    def load_forecast(
        self, forecast: tuple[float, ...], start: datetime, created: datetime
    ) -> None:
        """The planner's latest forecast: one price per step from `start` (real time)."""
        self._forecast, self._start, self._created = forecast, start, created

    def see(self, m: Measurements) -> None:
        """This cycle's measurements, before the controllers decide."""
        self._measured = m

    def _view(self, now: datetime) -> SiteView:
        m = self._measured
        if m is None or m.soc_pct is None or m.battery_temp_c is None:
            raise FallbackError("input", "no measured SOC or battery temperature")
        if self._start is None or self._created is None or not self._forecast:
            raise FallbackError("input", "no forecast yet")
        if now - self._created > self.plan.max_age:
            raise FallbackError("input", "the forecast is older than the plan's maximum age")
        i = int((now - self._start) / self._step)
        if not 0 <= i < len(self._forecast):
            raise FallbackError("input", "now is outside the forecast")
        return SiteView(m.soc_pct, m.battery_temp_c, self._forecast, now, first=i)

    def _act(self, now: datetime) -> Proposal:
        if self.problem is not None:
            raise FallbackError(*self.problem)
        assert self.policy is not None
        obs = observation(self._view(now), self.policy.card)
        try:
            action, elapsed_ms = self.policy.act(obs)
        except PolicyError as exc:
            raise FallbackError("nan", str(exc)) from None
        self.latencies_ms.append(elapsed_ms)
        if elapsed_ms > self.max_ms:
            raise FallbackError(
                "slow", f"the policy took {elapsed_ms:.2f} ms (limit {self.max_ms:g} ms)"
            )
        b = self.battery
        setpoint_w = action * (b.max_charge_w if action >= 0 else b.max_discharge_w)
        return Proposal(
            self.name, setpoint_w, f"learned policy: action {action:+.3f} ({elapsed_ms:.2f} ms)"
        )

    def propose(self, now: datetime) -> Proposal | None:
        """The policy's setpoint; else the plan's, saying why; else nothing (lower controllers
        decide)."""
        self.decisions += 1
        try:
            proposal = self._act(now)
        except FallbackError as fb:
            self.fallbacks[fb.kind] += 1
            if fb.kind != self._last_kind:
                log.warning("learned policy falls back to the plan", kind=fb.kind, reason=fb.why)
            self._last_kind = fb.kind
            planned = self.plan.propose(now)
            if planned is None:
                return None
            return Proposal(
                planned.controller, planned.setpoint_w, f"{planned.reason}; policy: {fb.why}"
            )
        self._last_kind = None
        return proposal
