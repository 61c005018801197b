"""What the fleet routes share, on `app.state.ctx`: the same key checks as the gateway
(`bessai.api.deps.RoleCheck` reads `ctx.auth`), the database pool, the consumer's counters
and the fleet settings."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

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

    #: how long one computed answer of /api/v1/fleet is served again (seconds)
    cache_s: float = 1.0
    _cached: tuple[float, bytes] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def view(self) -> FleetView:
        """The fleet now, with the metrics updated from it."""
        view = await load_view(self.pool, datetime.now(UTC), limits_of(self.fleet))
        self.metrics.update(view)
        return view

    async def view_json(self) -> bytes:
        """/api/v1/fleet's body. Computed at most once per `cache_s` whatever the number of
        callers (they wait for the one computation): a thousand sites make a 300 kB answer,
        and a dashboard per operator polling it must not multiply that work."""
        async with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self.cache_s:
                return self._cached[1]
            body = json.dumps(fleet_document(await self.view(), self.fleet)).encode()
            self._cached = (time.monotonic(), body)
            return body


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def fleet_document(view: FleetView, config: FleetConfig) -> dict[str, Any]:
    """The view as /api/v1/fleet's JSON (the `Fleet` model of the OpenAPI spec)."""
    sites = []
    for site in view.sites:
        doc = asdict(site)
        doc["last_seen"] = _iso(site.last_seen)
        doc["alarms"] = list(site.alarms)
        sites.append(doc)
    return {
        "at": _iso(view.at),
        "stale_after_s": config.stale_after_s,
        "totals": asdict(view.totals),
        "sites": sites,
    }


async def fleet_context(request: Request) -> FleetContext:
    """The app's context (a dependency)."""
    ctx: FleetContext = request.app.state.ctx
    return ctx
