"""Active and recently resolved alerts."""

from typing import Annotated

from fastapi import APIRouter, Query

from bessai.api import models
from bessai.api.deps import READ, AuthFirstRoute, Ctx, PageLimit
from bessai.api.responses import KEYED
from bessai.api.views import alert_out

router = APIRouter(route_class=AuthFirstRoute, responses=KEYED, dependencies=[READ])


@router.get("/alerts", response_model=models.Alerts)
async def get_alerts(
    ctx: Ctx, limit: PageLimit, site: Annotated[str | None, Query(max_length=64)] = None
) -> models.Alerts:
    """Active and recent alerts, newest first."""
    manager = ctx.monitor.alerts
    return models.Alerts(
        active=[alert_out(a) for a in manager.active(site)],
        recent=[alert_out(a) for a in manager.recent(limit, site)],
    )
