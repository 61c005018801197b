"""What the fleet routes share, on `app.state.ctx`: the same key checks as the gateway
(`bessai.api.deps.RoleCheck` reads `ctx.auth`), the database pool, the consumer's counters
and the fleet settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from fastapi import Request

from bessai.api.security import Authorizer
from bessai.config import ApiConfig, FleetConfig
from bessai.fleet.consumer import ConsumerStats
from bessai.fleet.metrics import FleetMetrics
from bessai.fleet.view import FleetView, FlexLimits, load_view


def limits_of(config: FleetConfig) -> FlexLimits:
    """The view's parameters from `[fleet]`."""
    return FlexLimits(
        stale_after_s=config.stale_after_s,
        horizon_h=config.flex_horizon_h,
        soc_min_pct=config.soc_min_pct,
        soc_max_pct=config.soc_max_pct,
    )


@dataclass(slots=True)
class FleetContext:
    """One per fleet app."""

    auth: Authorizer
    config: ApiConfig
    fleet: FleetConfig
    pool: asyncpg.Pool
    stats: ConsumerStats
    metrics: FleetMetrics

    async def view(self) -> FleetView:
        """The fleet now, with the metrics updated from it."""
        view = await load_view(self.pool, datetime.now(UTC), limits_of(self.fleet))
        self.metrics.update(view)
        return view


async def fleet_context(request: Request) -> FleetContext:
    """The app's context (a dependency)."""
    ctx: FleetContext = request.app.state.ctx
    return ctx
