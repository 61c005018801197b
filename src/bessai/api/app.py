"""The gateway's HTTP server: /health and /metrics (the API issue adds /api/v1 on this app)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bessai import __version__
from bessai.control.gateway import Gateway
from bessai.observe.health import health


def create_app(gateway: Gateway) -> FastAPI:
    app = FastAPI(
        title="open-bess-edge gateway", version=__version__, docs_url=None, redoc_url=None
    )

    @app.get("/health")
    def get_health() -> JSONResponse:
        healthy, body = health(gateway)
        return JSONResponse(body, status_code=200 if healthy else 503)

    @app.get("/metrics")
    def get_metrics() -> Response:
        return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
