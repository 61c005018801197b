"""The virtual power plant as the gateway sees it: each site's OpenADR VEN (VTN reachable,
active events, the limits in force, flexibility, last reports) and the operator's opt-out."""

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request

from bessai.api import models
from bessai.api.deps import AuthFirstRoute, Controller, Ctx, Reader, Site
from bessai.api.responses import FORBIDDEN, KEYED, NOT_FOUND
from bessai.vpp.times import format_datetime
from bessai.vpp.ven import Ven

router = APIRouter(route_class=AuthFirstRoute, responses=KEYED)
#: the VTN's webhook: no API key (the VTN has none), the VEN's own bearer token instead
notify_router = APIRouter()


def _ven_view(ven: Ven, now: datetime) -> models.VppSite:
    events = []
    for interval in ven.active(now):
        event = ven.events.get(interval.event_id, {})
        events.append(
            models.VppEvent(
                event_id=interval.event_id,
                name=event.get("eventName"),
                program_id=str(event.get("programID", "")),
                interval_id=interval.interval_id,
                start=interval.start,
                end=interval.end,
                payloads={k: list(v) for k, v in interval.payloads.items()},
            )
        )
    import_max_w, export_max_w, _ = ven.site.grid_event.active_limits(now)
    last = ven.site.last
    flex = ven.flex(last.measurements if last is not None else None)
    reports = [
        models.VppReport(event_id=r.event_id, report_id=r.report_id, sent=r.sent,
                         intervals=len(r.intervals), last=r.intervals[-1] if r.intervals else None)
        for r in list(ven.reports.values())[-5:]
    ]  # fmt: skip
    status = ven.status
    return models.VppSite(
        site_id=ven.site.id,
        ven_name=ven.ven_name,
        vtn_url=ven.config.vtn_url,
        vtn_up=status.vtn_up,
        last_poll=format_datetime(status.last_poll) if status.last_poll else None,
        last_error=status.last_error,
        ven_id=status.ven_id,
        events_received=status.events_received,
        reports_sent=status.reports_sent,
        active_events=events,
        opted_out=sorted(ven.opted_out),
        import_max_w=import_max_w,
        export_max_w=export_max_w,
        flex_up_kw=None if flex is None else flex[0] / 1000.0,
        flex_down_kw=None if flex is None else flex[1] / 1000.0,
        last_reports=reports,
    )


@router.get("/vpp", response_model=models.VppView)
async def get_vpp(ctx: Ctx, _: Reader) -> models.VppView:
    """Every site's VEN: active events, limits, flexibility and the last reports."""
    now = datetime.now(UTC)
    return models.VppView(sites=[_ven_view(v, now) for v in ctx.vens.values()])


@router.post(
    "/sites/{site_id}/vpp/events/{event_id}/opt-out",
    response_model=models.VppSite,
    responses={**FORBIDDEN, **NOT_FOUND},
)
async def opt_out(site: Site, event_id: str, ctx: Ctx, _: Controller) -> models.VppSite:
    """Decline an event: the site stops acting on it now; its reports say OPTED_OUT."""
    ven = ctx.vens.get(site.id)
    if ven is None:
        raise HTTPException(404, f"site {site.id!r} has no VEN ([sites.vpp] enabled = false)")
    if not await ven.opt_out(event_id):
        raise HTTPException(404, f"site {site.id!r} knows no event {event_id!r}")
    return _ven_view(ven, datetime.now(UTC))


@notify_router.post("/vpp/notify/{site_id}", status_code=202, include_in_schema=False)
async def notify(site_id: str, request: Request, ctx: Ctx) -> dict[str, bool]:
    """A VTN's webhook notification: with the VEN's token, the VEN polls at once. The body is
    not read; a wrong token or site is one 401, so neither is disclosed."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    ven = ctx.vens.get(site_id)
    if ven is None or scheme.lower() != "bearer" or not ven.wake(token.strip()):
        raise HTTPException(401, "unknown site or wrong notification token")
    return {"accepted": True}
