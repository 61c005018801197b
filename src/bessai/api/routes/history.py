"""`GET /api/v1/sites/{site_id}/history`: the last minutes of a site's key values, from the
in-memory `RecentHistory`, so the dashboard's charts are full right after a (re)load."""

# No `from __future__ import annotations`: FastAPI resolves the route's Annotated parameters
# where the route is defined (the bound on `minutes` is a module constant, but keep one rule).

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from bessai.api.deps import READ, AuthFirstRoute, Ctx, Site
from bessai.api.responses import KEYED, NOT_FOUND
from bessai.observe.history import WINDOW_S

MAX_MINUTES = int(WINDOW_S // 60)
DEFAULT_MINUTES = 10


class HistoryPointOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ts_utc: datetime
    soc_pct: float | None
    battery_power_w: float | None = Field(description="> 0 charging")
    pv_power_w: float | None
    grid_power_w: float | None = Field(description="> 0 importing")
    load_power_w: float | None
    setpoint_w: float = Field(description="the guard's setpoint that cycle, > 0 charge")
    safety_state: Literal["normal", "limited", "safe"]


class SiteHistoryOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: str
    timezone: str = Field(description="the site's IANA zone (configuration `timezone`)")
    minutes: int
    resolution_s: float = Field(description="at most one point per this many seconds")
    now_utc: datetime = Field(description="the gateway's clock when it answered")
    points: list[HistoryPointOut] = Field(description="oldest first")


router = APIRouter(route_class=AuthFirstRoute, responses=KEYED, dependencies=[READ])


@router.get("/sites/{site_id}/history", response_model=SiteHistoryOut, responses=NOT_FOUND)
async def get_history(
    site: Site,
    ctx: Ctx,
    minutes: Annotated[
        int, Query(ge=1, le=MAX_MINUTES, description="how far back, in minutes")
    ] = DEFAULT_MINUTES,
) -> SiteHistoryOut:
    """The site's SOC, battery/PV/grid/load power, setpoint and safety state over the last
    `minutes`, oldest first, kept in memory since the gateway started (at most one hour,
    downsampled to one point per second for sites that cycle faster)."""
    history = ctx.monitor.history
    buffer = history.sites[site.id]
    now = datetime.now(UTC)
    points = history.recent(site.id, minutes, now)
    return SiteHistoryOut(
        site=site.id,
        timezone=site.config.timezone,
        minutes=minutes,
        resolution_s=buffer.resolution_s,
        now_utc=now,
        points=[
            HistoryPointOut(
                ts_utc=p.ts,
                soc_pct=p.soc_pct,
                battery_power_w=p.battery_power_w,
                pv_power_w=p.pv_power_w,
                grid_power_w=p.grid_power_w,
                load_power_w=p.load_power_w,
                setpoint_w=p.setpoint_w,
                safety_state=p.safety_state,
            )
            for p in points
        ],
    )
