"""Where the sites stand: every site's status, one site's, the fleet, a site's schedule."""

from datetime import UTC, datetime

from fastapi import APIRouter

from bessai.api import models
from bessai.api.deps import READ, AuthFirstRoute, Ctx, Site
from bessai.api.responses import KEYED, NOT_FOUND
from bessai.api.views import schedule_view, site_status

router = APIRouter(route_class=AuthFirstRoute, responses=KEYED, dependencies=[READ])


@router.get("/status", response_model=models.StatusList)
async def get_status(ctx: Ctx) -> models.StatusList:
    """Every site's latest state."""
    now = datetime.now(UTC)
    return models.StatusList(sites=[site_status(s, now) for s in ctx.gateway.sites.values()])


@router.get("/sites/{site_id}/status", response_model=models.SiteStatus, responses=NOT_FOUND)
async def get_site_status(site: Site) -> models.SiteStatus:
    """One site's latest state."""
    return site_status(site, datetime.now(UTC))


@router.get("/fleet", response_model=models.Fleet)
async def get_fleet(ctx: Ctx) -> models.Fleet:
    """Totals over this gateway's sites."""
    view = ctx.gateway.fleet()
    return models.Fleet(
        sites=view.sites,
        sites_safe=view.sites_safe,
        capacity_kwh=view.capacity_kwh,
        weighted_soc_pct=view.weighted_soc_pct,
        available_charge_w=view.available_charge_w,
        available_discharge_w=view.available_discharge_w,
        alarms={k: list(v) for k, v in view.alarms.items()},
    )


@router.get(
    "/sites/{site_id}/schedule",
    response_model=models.Schedule,
    response_model_exclude_none=True,
    responses=NOT_FOUND,
)
async def get_schedule(site: Site, ctx: Ctx) -> models.Schedule:
    """The site's current plan, one slot per step, with each slot's reason."""
    return schedule_view(site, datetime.now(UTC), ctx.gateway.planners.get(site.id))
