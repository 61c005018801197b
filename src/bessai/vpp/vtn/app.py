"""The VTN as a standalone app (`bessai vpp vtn serve`): the router under /openadr3/3.1.0."""

from __future__ import annotations

from fastapi import FastAPI

from bessai import __version__
from bessai.vpp.vtn.routes import vtn_router
from bessai.vpp.vtn.service import Vtn

PREFIX = "/openadr3/3.1.0"


def create_vtn_app(vtn: Vtn, prefix: str = PREFIX) -> FastAPI:
    """A FastAPI app serving one VTN."""
    app = FastAPI(title="open-bess-edge OpenADR 3.1 VTN", version=__version__)
    app.include_router(vtn_router(vtn), prefix=prefix)
    app.router.add_event_handler("shutdown", vtn.close)
    return app
