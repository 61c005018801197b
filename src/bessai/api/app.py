"""The gateway's HTTP server: the versioned API under /api/v1 (its OpenAPI spec, which needs a
read key, at /api/v1/openapi.json), the dashboard at /, and /health and /metrics for supervisors
and scrapers.

One router per resource (`bessai.api.routes`); what they share (the gateway, the key checks,
the site lookup) comes from `bessai.api.deps` through `app.state`. Every path that can move a
battery goes through `SiteRunner.verdict` (see routes/control.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from bessai import __version__
from bessai.api import errors
from bessai.api.analyst_app import gateway_analyst
from bessai.api.analyst_app import page as analyst_page
from bessai.api.deps import ApiContext, EventHub
from bessai.api.keys import KeyStore
from bessai.api.routes import (
    alerts,
    analyst,
    audit,
    carbon,
    control,
    events,
    history,
    status,
    system,
)
from bessai.api.security import Authorizer, BodyLimit, SecurityHeaders
from bessai.config import Config, is_loopback
from bessai.errors import ConfigError
from bessai.observe.monitor import Monitor

API_PREFIX = "/api/v1"
DESCRIPTION = (
    "Status, alerts, audit and control of the sites this gateway runs. Every route needs an API "
    "key in a header (read, control or admin role), checked before the request body is read; "
    "every control request passes the site's SafetyGuard."
)


def check_bind(config: Config, host: str) -> None:
    """Refuse to serve a key-less API on anything but loopback, whatever set the host."""
    if config.api.dev_mode and not is_loopback(host):
        raise ConfigError(
            f"api.dev_mode serves the API without keys; it binds to loopback only, "
            f"not {host!r}. Turn dev_mode off and add keys with `bessai keys add`."
        )


def _openapi(app: FastAPI, max_page_size: int) -> dict[str, Any]:
    """FastAPI's spec, built once, with the configured page-size cap as `limit`'s maximum."""
    if app.openapi_schema is None:
        spec = FastAPI.openapi(app)  # builds and caches it in app.openapi_schema
        for path in spec["paths"].values():
            for operation in path.values():
                for param in operation.get("parameters", []):
                    if param["name"] == "limit" and param["in"] == "query":
                        param["schema"]["maximum"] = max_page_size
    return app.openapi_schema or {}


def create_app(monitor: Monitor) -> FastAPI:
    """The API, dashboard, /health and /metrics of one running gateway."""
    config = monitor.gateway.config
    api_cfg = config.api
    ctx = ApiContext(monitor, Authorizer(api_cfg, KeyStore(config.keys_file)), EventHub())
    for runner in monitor.gateway.sites.values():
        runner.listeners.append(ctx.hub.notify)
    monitor.alerts.listeners.append(ctx.hub.notify)

    app = FastAPI(
        title="open-bess-edge gateway",
        version=__version__,
        description=DESCRIPTION,
        # Served by routes/system.py behind a read key instead.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.analyst = gateway_analyst(config)
    app.openapi = lambda: _openapi(app, api_cfg.max_page_size)  # type: ignore[method-assign]
    errors.install(app)
    for module in (system, status, history, carbon, alerts, audit, events, control, analyst):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(system.outside)
    app.include_router(analyst_page)
    app.mount("/static", StaticFiles(directory=system.STATIC_DIR), name="static")

    if api_cfg.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=api_cfg.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
            max_age=600,
        )
    app.add_middleware(BodyLimit, max_bytes=api_cfg.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app
