"""Views of the gateway's state as the API models them: a site's status, an alert, the
optimizer's schedule. Pure functions of what the gateway holds; no I/O."""

from __future__ import annotations

from datetime import datetime, timedelta

from bessai.api import models
from bessai.control.planner import SchedulePlanner
from bessai.control.site import SiteRunner
from bessai.observe.alerts import Alert
from bessai.optimize import Bands
from bessai.optimize.follow import current_slot


def site_status(site: SiteRunner, now: datetime) -> models.SiteStatus:
    """One site as `GET /sites/{id}/status` shows it: the last cycle's record, or only the
    configuration while the site has not finished a cycle."""
    until = site.override.until
    setpoint = site.override.setpoint_w
    override = (
        models.OverrideState(setpoint_w=setpoint, until_utc=until)
        if until is not None and setpoint is not None and until > now
        else None
    )
    status = models.SiteStatus(
        site=site.id,
        name=site.config.name,
        timezone=site.config.timezone,
        capacity_kwh=site.config.battery.capacity_kwh,
        mode=site.mode.value,
        override=override,
    )
    if site.assessor is not None:
        suspect = (
            [] if site.last is None or site.last.security is None else site.last.security.suspect
        )
        status.security = models.SecurityStatus.model_validate(
            {**site.assessor.status(), "suspect": list(suspect)}
        )
    record = site.last
    if record is None:
        return status
    m = record.measurements
    status.cycle = record.cycle
    status.ts_utc = record.ts
    status.data_age_s = None if record.data_age_s is None else round(record.data_age_s, 3)
    status.device_connected = record.device_connected
    status.soc_pct = m.soc_pct
    status.battery_power_w = m.battery_power_w
    status.pv_power_w = m.pv_power_w
    status.grid_power_w = m.grid_power_w
    status.load_power_w = m.load_power_w
    status.battery_temp_c = m.battery_temp_c
    status.alarms = list(m.alarms)
    status.safety = models.Safety(
        state=record.safety_state.value, reasons=list(record.safety_reasons)
    )
    status.controller = models.ActiveController(
        name=record.proposal.controller,
        reason=record.proposal.reason,
        requested_w=record.proposal.setpoint_w,
    )
    d = record.decision
    status.decision = models.Decision(
        outcome=d.outcome.value, setpoint_w=d.setpoint_w, reason=d.reason,
        binding_limit=d.binding_limit,
    )  # fmt: skip
    return status


def alert_out(alert: Alert) -> models.AlertOut:
    """An alert as the API shows it."""
    return models.AlertOut.model_validate(alert.to_json())


def schedule_view(
    site: SiteRunner, now: datetime, planner: SchedulePlanner | None
) -> models.Schedule:
    """The plan the schedule controller follows, slot by slot, with why it applies or not."""
    ctl = site.schedule
    plan, plan_start = ctl.schedule, ctl.plan_start
    view = models.Schedule(
        site=site.id,
        following=False,
        why="no plan: the optimizer is not enabled for this site or has not planned yet",
        max_age_s=ctl.max_age.total_seconds(),
        slots=[],
    )
    if planner is not None and planner.last_plan is not None:
        view.forecaster = planner.last_plan.forecaster
        view.forecaster_note = planner.last_plan.forecaster_note
    if plan is None or plan_start is None:
        return view
    index, why = current_slot(plan, plan_start, now, max_age=ctl.max_age, created_at=ctl.created_at)
    view.following = index is not None
    view.why = why
    view.created_utc = ctl.created_at
    view.status = plan.status
    view.revenue = round(plan.revenue, 4)
    view.net_revenue = round(plan.net_revenue, 4)
    if planner is not None:
        view.price_unit = planner.prices.unit
    step = timedelta(hours=plan.step_h)
    net_kw = plan.net_kw
    view.slots = [
        models.ScheduleSlot(
            start_utc=plan_start + i * step,
            end_utc=plan_start + (i + 1) * step,
            setpoint_w=round(float(net_kw[i]) * 1000.0, 3),
            action=plan.actions[i],
            reason=plan.reasons[i],
            price=float(plan.prices[i]),
            soc_pct=round(float(plan.soc_pct[i]), 3),
            active=i == index,
        )
        for i in range(len(plan))
    ]
    # A probabilistic forecaster hangs its quantile bands (one per plan step) on the
    # controller beside the plan; point forecasts have none, and then there is no field.
    bands = getattr(ctl, "bands", None)
    if isinstance(bands, Bands) and len(bands.p50) == len(plan):
        view.forecast = [
            models.ForecastBand(
                start_utc=plan_start + i * step,
                p10=float(bands.p10[i]),
                p50=float(bands.p50[i]),
                p90=float(bands.p90[i]),
            )
            for i in range(len(plan))
        ]
    return view
