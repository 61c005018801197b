"""The fleet service's HTTP app: the fleet API under /api/v1, /health, /metrics and the
fleet page. Other services mount their routers into the same app (`extra_routers`, e.g. an
OpenADR VTN): they get the same key checks (`bessai.api.deps.RoleCheck` reads
`app.state.ctx.auth`) and the same OpenAPI document."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from bessai import __version__
from bessai.api import errors
from bessai.api.security import BodyLimit, SecurityHeaders
from bessai.fleet import routes
from bessai.fleet.context import FleetContext

API_PREFIX = "/api/v1"
DESCRIPTION = (
    "The fleet: every site's latest state, alarms and history, and the fleet totals, from the "
    "gateways' telemetry stream. Every route needs an API key in a header (read role)."
)


def create_fleet_app(
    ctx: FleetContext, extra_routers: Sequence[tuple[APIRouter, str]] = ()
) -> FastAPI:
    """The app; each `(router, prefix)` of `extra_routers` is included after the fleet's own
    routes (a router built with `route_class=AuthFirstRoute` checks keys like them)."""
    app = FastAPI(
        title="open-bess-edge fleet",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    errors.install(app)
    app.include_router(routes.router, prefix=API_PREFIX)
    for router, prefix in extra_routers:
        app.include_router(router, prefix=prefix)
    app.include_router(routes.outside)
    app.mount("/static", StaticFiles(directory=routes.STATIC_DIR), name="fleet-static")
    app.add_middleware(BodyLimit, max_bytes=ctx.config.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app
