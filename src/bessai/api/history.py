"""`GET /api/v1/sites/{site_id}/history`: the last minutes of a site's key values, from the
in-memory `RecentHistory`, so the dashboard's charts are full right after a (re)load."""

# No `from __future__ import annotations`: FastAPI resolves the route's Annotated parameters
# where the route is defined (the bound on `minutes` is a module constant, but keep one rule).

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, params
from pydantic import BaseModel, ConfigDict, Field

from bessai.api import models
from bessai.control.gateway import Gateway
from bessai.observe.history import WINDOW_S, RecentHistory

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


def history_router(gateway: Gateway, history: RecentHistory, reader: params.Depends) -> APIRouter:
    """The history route, for inclusion in the /api/v1 router (read role)."""
    router = APIRouter()
    not_found: dict[int | str, dict[str, Any]] = {
        404: {"model": models.Problem, "description": "unknown site"}
    }

    @router.get(
        "/sites/{site_id}/history",
        response_model=SiteHistoryOut,
        dependencies=[reader],
        responses=not_found,
    )
    async def get_history(
        site_id: str,
        minutes: Annotated[
            int, Query(ge=1, le=MAX_MINUTES, description="how far back, in minutes")
        ] = DEFAULT_MINUTES,
    ) -> SiteHistoryOut:
        """The site's SOC, battery/PV/grid/load power, setpoint and safety state over the last
        `minutes`, oldest first, kept in memory since the gateway started (at most one hour,
        downsampled to one point per second for sites that cycle faster)."""
        site = gateway.sites.get(site_id)
        buffer = history.sites.get(site_id)
        if site is None or buffer is None:
            known = ", ".join(sorted(gateway.sites))
            raise HTTPException(404, f"unknown site {site_id!r}; sites: {known}")
        now = datetime.now(UTC)
        points = history.recent(site_id, minutes, now)
        return SiteHistoryOut(
            site=site_id,
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

    return router
