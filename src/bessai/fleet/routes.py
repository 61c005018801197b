"""The fleet API under /api/v1 (read keys, as on the gateway), and outside it /health,
/metrics and the fleet page."""

# No `from __future__ import annotations`: FastAPI reads the annotations at run time.

from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bessai.api.deps import READ, AuthFirstRoute, metrics_access
from bessai.api.responses import KEYED, NOT_FOUND, problem
from bessai.fleet import models
from bessai.fleet.context import FleetContext, fleet_context
from bessai.fleet.history import plan, site_history, site_known

STATIC_DIR = Path(str(files("bessai.fleet").joinpath("static")))

Ctx = Annotated[FleetContext, Depends(fleet_context)]

router = APIRouter(route_class=AuthFirstRoute, responses=KEYED, dependencies=[READ])


@router.get("/fleet", response_model=models.Fleet)
async def get_fleet(ctx: Ctx) -> Response:
    """Every site (last seen, online or stale, SOC, power, safety state, active alarms) and
    the fleet totals: capacity-weighted SOC, charge/discharge flexibility over the horizon,
    sites in SAFE. At most one second old."""
    return Response(await ctx.view_json(), media_type="application/json")


@router.get(
    "/fleet/sites/{site_id}/history",
    response_model=models.SiteHistory,
    responses={**NOT_FOUND, 422: problem("a bad range, step or field list")},
)
async def get_site_history(
    ctx: Ctx,
    site_id: Annotated[str, PathParam(max_length=64)],
    start: datetime | None = None,
    end: datetime | None = None,
    step_s: Annotated[int | None, Query(ge=1, le=86_400)] = None,
    fields: Annotated[str | None, Query(max_length=600)] = None,
) -> models.SiteHistory:
    """One site's telemetry, averaged per `step_s` bucket (default: the last 24 h in at most
    500 points; `fields` is a comma-separated list of value names)."""
    try:
        q = plan(site_id, start, end, step_s, fields, datetime.now(UTC))
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    if not await site_known(ctx.pool, site_id):
        raise HTTPException(404, f"the fleet has never heard from site {site_id!r}")
    points = await site_history(ctx.pool, q)
    return models.SiteHistory(
        site_id=site_id,
        start=q.start,
        end=q.end,
        step_s=q.step_s,
        fields=list(q.fields),
        points=[models.HistoryPoint(t=t, n=n, values=v) for t, n, v in points],
    )


@router.get("/openapi.json", include_in_schema=False)
async def get_openapi(request: Request) -> JSONResponse:
    """The spec needs a read key, as on the gateway."""
    return JSONResponse(request.app.openapi())


outside = APIRouter(route_class=AuthFirstRoute, include_in_schema=False)


@outside.get("/health")
async def get_health(ctx: Ctx) -> JSONResponse:
    """200 when the database answers and the consumer reaches NATS, else 503."""
    try:
        async with ctx.pool.acquire(timeout=2) as conn:
            await conn.fetchval("SELECT 1")
        database = True
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        database = False
    s = ctx.stats
    healthy = database and s.connected
    body = models.FleetHealth(
        status="ok" if healthy else "degraded",
        database=database,
        nats=s.connected,
        lag_messages=s.lag_messages,
        written_total=s.written_total,
        duplicates_total=s.duplicates_total,
        rejected_total=s.rejected_total,
    )
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)


@outside.get("/metrics", dependencies=[Depends(metrics_access)])
async def get_metrics(ctx: Ctx) -> Response:
    """Prometheus text; the fleet gauges are refreshed from the database first."""
    await ctx.view()
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@outside.get("/")
@outside.get("/fleet")
def get_page() -> FileResponse:
    """The fleet page (a table and sparklines; it asks for a read key)."""
    return FileResponse(STATIC_DIR / "fleet.html", media_type="text/html")
