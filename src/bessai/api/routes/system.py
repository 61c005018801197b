"""The gateway itself: version, the calling key, health; and, outside the API, `/health` for
probes, `/metrics` for scrapers, the dashboard page and the (keyed) OpenAPI spec."""

from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bessai import __version__
from bessai.api import models
from bessai.api.deps import (
    READ,
    AuthFirstRoute,
    Ctx,
    Reader,
    metrics_access,
)
from bessai.api.responses import KEYED
from bessai.observe.health import health

STATIC_DIR = Path(str(files("bessai.api").joinpath("static")))

router = APIRouter(route_class=AuthFirstRoute, responses=KEYED)


@router.get("/version", response_model=models.Version, dependencies=[READ])
async def get_version() -> models.Version:
    """The gateway's version."""
    return models.Version(version=__version__)


@router.get("/me", response_model=models.Me)
async def get_me(who: Reader) -> models.Me:
    """The calling key's name and role (what the dashboard shows after login)."""
    return models.Me(name=who.name, role=who.role.value)


@router.get("/health", dependencies=[READ])
async def get_api_health(ctx: Ctx) -> dict[str, Any]:
    """The health report. Always 200: a degraded gateway is a fact to read here, not a
    failed request; probes that want the verdict in the status code use /health."""
    return health(ctx.monitor)[1]


@router.get("/openapi.json", include_in_schema=False, dependencies=[READ])
async def get_openapi(request: Request) -> JSONResponse:
    """The spec needs a read key: it lists the control routes and their limits."""
    return JSONResponse(request.app.openapi())


# -- outside the API: supervisors, scrapers and the dashboard -----------------------------------

outside = APIRouter(route_class=AuthFirstRoute, include_in_schema=False)


@outside.get("/health")
def get_health(ctx: Ctx) -> JSONResponse:
    """Liveness and readiness: 200 when healthy, 503 with the reasons otherwise."""
    healthy, body = health(ctx.monitor)
    return JSONResponse(body, status_code=200 if healthy else 503)


@outside.get("/metrics", dependencies=[Depends(metrics_access)])
def get_metrics(ctx: Ctx) -> Response:
    """Prometheus metrics in the text exposition format."""
    registry = ctx.monitor.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@outside.get("/")
def get_dashboard() -> FileResponse:
    """The dashboard page."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")
