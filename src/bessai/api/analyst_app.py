"""The analyst page without a gateway: `bessai analyst serve` runs the analyst routes, the
key checks and the dashboard's static files, and nothing that needs a device. The gateway
serves the same routes and page (`bessai.api.app`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from bessai import __version__
from bessai.analysis.analyst import Models
from bessai.api import errors, models
from bessai.api.analyst import Analyst, Catalog, slug
from bessai.api.deps import READ, AuthFirstRoute
from bessai.api.keys import KeyStore
from bessai.api.responses import KEYED
from bessai.api.routes import analyst as analyst_routes
from bessai.api.routes import system
from bessai.api.security import Authorizer, BodyLimit, SecurityHeaders
from bessai.config import ApiConfig, Config
from bessai.control.planner import price_path

API_PREFIX = "/api/v1"
DESCRIPTION = (
    "The analyst view of open-bess-edge without a gateway: price series, forecasts, plans, "
    "back-tests and size sweeps. Every route needs an API key in a header (a read key "
    "suffices)."
)

#: The page, served by the gateway and by `bessai analyst serve`.
page = APIRouter(include_in_schema=False)


@page.get("/analyst")
def get_analyst_page() -> FileResponse:
    """The analyst page."""
    return FileResponse(system.STATIC_DIR / "analyst.html", media_type="text/html")


@dataclass(slots=True)
class AnalystContext:
    """What the key checks read from `app.state.ctx` (as `ApiContext` offers them)."""

    auth: Authorizer
    config: ApiConfig


def make_analyst(prices: list[Path], model_roots: list[Path], *, gateway: bool = False) -> Analyst:
    """The catalog (the shipped sample and ``prices``) and the models under ``model_roots``."""
    files: list[tuple[str, Path]] = []
    for path in prices:
        key = slug(path.stem)
        while key in [k for k, _ in files] or key == "crucero-2023":
            key += "-2"
        files.append((key, path))
    return Analyst(Catalog(files, price_path), Models.found(model_roots), gateway=gateway)


def gateway_analyst(config: Config) -> Analyst:
    """The analyst state of a gateway: the sites' price files and trained models too."""
    prices: list[Path] = []
    roots: list[Path] = []
    for site in config.sites:
        spec = site.optimizer.prices
        if not spec.startswith("builtin:") and Path(spec) not in prices:
            prices.append(Path(spec))
        if site.optimizer.forecaster.startswith("model:"):
            roots.append(Path(site.optimizer.forecaster.removeprefix("model:")))
    return make_analyst(prices, [r for r in roots if r.is_dir()], gateway=True)


def create_analyst_app(api_cfg: ApiConfig, keys: KeyStore, analyst: Analyst) -> FastAPI:
    """The analyst routes, the calling key's identity, the OpenAPI spec and the page."""
    app = FastAPI(
        title="open-bess-edge analyst",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = AnalystContext(Authorizer(api_cfg, keys), api_cfg)
    app.state.analyst = analyst
    errors.install(app)
    base = APIRouter(route_class=AuthFirstRoute, responses=KEYED)
    base.add_api_route("/version", system.get_version, response_model=models.Version,
                       dependencies=[READ])  # fmt: skip
    base.add_api_route("/me", system.get_me, response_model=models.Me)
    base.add_api_route("/openapi.json", system.get_openapi, include_in_schema=False,
                       dependencies=[READ])  # fmt: skip
    app.include_router(base, prefix=API_PREFIX)
    app.include_router(analyst_routes.router, prefix=API_PREFIX)
    app.include_router(page)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/analyst")

    app.mount("/static", StaticFiles(directory=system.STATIC_DIR), name="static")
    app.add_middleware(BodyLimit, max_bytes=api_cfg.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app
