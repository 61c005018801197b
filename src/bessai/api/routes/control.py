"""Control: the manual override and the site's mode. Nothing here touches a device.

An override becomes the site's manual override, which the next cycle passes through the same
safety verdict as every other request (`SiteRunner.verdict`). The answer the caller gets is that
verdict on the latest measurements, so "clamped to 5000 W because of battery.max_charge_w" is
what the device will be asked for, not a promise the cycle may break."""

import asyncio
from datetime import UTC, datetime

import structlog
from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from bessai.api import models
from bessai.api.deps import AuthFirstRoute, Controller, Ctx, Site
from bessai.api.keys import Principal
from bessai.api.responses import BODY, FORBIDDEN, KEYED, NOT_FOUND
from bessai.control.audit import AuditRecord
from bessai.control.safety import GuardDecision, Outcome
from bessai.control.site import SiteMode, SiteRunner

log = structlog.get_logger("bessai.api")

router = APIRouter(route_class=AuthFirstRoute, responses={**KEYED, **FORBIDDEN, **NOT_FOUND})


async def audit_action(
    ctx: Ctx, site: SiteRunner, who: Principal, reason: str, decision: GuardDecision
) -> None:
    """Write a control action to the command audit as controller `api`, with the key's name."""
    record = AuditRecord(
        ts=datetime.now(UTC),
        site=site.id,
        controller="api",
        reason=f"{reason} (key '{who.name}')",
        requested_w=decision.requested_w,
        setpoint_w=decision.setpoint_w,
        outcome=decision.outcome.value,
        guard_reason=decision.reason,
        binding_limit=decision.binding_limit,
        writes=[],
        verified=True,
    )
    await asyncio.to_thread(ctx.gateway.audit.append, record)
    log.info("control action", site=site.id, key=who.name, action=reason,
             outcome=decision.outcome.value)  # fmt: skip


def _duration_s(site: SiteRunner, body: models.OverrideIn) -> float:
    limit_s = site.override.max_s
    duration_s = site.override.default_s if body.duration_s is None else body.duration_s
    if duration_s > limit_s:
        # The same shape as every other validation error, so clients parse one format.
        raise RequestValidationError(
            [
                {
                    "type": "less_than_equal",
                    "loc": ("body", "duration_s"),
                    "msg": f"duration_s {duration_s:g} exceeds "
                    f"controllers.manual_override_max_s ({limit_s:g} s) of site {site.id!r}",
                    "input": duration_s,
                    "ctx": {"le": limit_s},
                }
            ]
        )
    return duration_s


@router.post(
    "/sites/{site_id}/override",
    response_model=models.OverrideResult,
    responses={
        **BODY,
        409: {"model": models.OverrideResult, "description": "blocked by the guard"},
    },
)
async def post_override(
    site: Site, who: Controller, ctx: Ctx, body: models.OverrideIn
) -> JSONResponse:
    """Set a manual setpoint that expires by itself. The guard's verdict on the latest
    measurements comes back (allowed, clamped with the binding limit, or blocked with the
    reason); a blocked request is not installed (409). What is installed is the guarded
    setpoint, and the cycle passes it through the guard again before any write."""
    duration_s = _duration_s(site, body)
    requested = body.setpoint_w
    # The same verdict the cycle asks before every write, on the latest measurements.
    decision = site.verdict(requested)
    action = f"override {requested:g} W for {duration_s:g} s" + (
        f": {body.reason}" if body.reason else ""
    )
    until = None
    if decision.outcome is not Outcome.BLOCKED:
        until = await site.install_override(
            decision.setpoint_w,
            duration_s,
            f"{body.reason or 'manual override'} (by {who.name})",
        )
    await audit_action(ctx, site, who, action, decision)
    result = models.OverrideResult(
        site=site.id,
        applied=until is not None,
        outcome=decision.outcome.value,
        requested_w=requested,
        setpoint_w=decision.setpoint_w,
        reason=decision.reason,
        binding_limit=decision.binding_limit,
        until_utc=until,
        mode=site.mode.value,
    )
    return JSONResponse(result.model_dump(mode="json"), status_code=409 if until is None else 200)


@router.delete("/sites/{site_id}/override", response_model=models.Cleared)
async def delete_override(site: Site, who: Controller, ctx: Ctx) -> models.Cleared:
    """Clear the site's manual override; the schedule or controllers take over."""
    had = await site.clear_override()
    note = GuardDecision(0, 0, Outcome.ALLOWED, "clearing an override only removes a request")
    await audit_action(ctx, site, who, "override cleared", note)
    return models.Cleared(site=site.id, cleared=had)


@router.post("/sites/{site_id}/mode", response_model=models.ModeOut, responses=BODY)
async def post_mode(site: Site, who: Controller, ctx: Ctx, body: models.ModeIn) -> models.ModeOut:
    """auto: the controllers decide; manual: only the manual override dispatches; safe:
    dispatch stops until the mode is changed back."""
    previous = await site.set_mode(SiteMode(body.mode))
    note = GuardDecision(0.0, 0.0, Outcome.ALLOWED, "a mode change writes nothing itself")
    await audit_action(ctx, site, who, f"mode {previous.value} -> {site.mode.value}", note)
    return models.ModeOut(site=site.id, mode=site.mode.value, previous=previous.value)
