"""The OpenADR 3.1 VTN mounted in the fleet app (`[fleet] vtn = true`): the aggregator's side
of the virtual power plant, next to the view of the sites it dispatches (docs/vpp.md)."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter

from bessai.config import FleetConfig
from bessai.errors import ConfigError
from bessai.vpp.vtn.app import PREFIX
from bessai.vpp.vtn.auth import parse_client
from bessai.vpp.vtn.routes import vtn_router
from bessai.vpp.vtn.service import Vtn
from bessai.vpp.vtn.store import MemoryStore, SqliteStore

CLIENTS_ENV = "BESSAI_VTN_CLIENTS"


def fleet_vtn(
    fleet: FleetConfig, environ: Mapping[str, str]
) -> tuple[Vtn | None, list[tuple[APIRouter, str]]]:
    """The VTN and its router to mount, or (None, []) when `fleet.vtn` is off. Its clients
    come from the environment, so their secrets stay out of the configuration file."""
    if not fleet.vtn:
        return None, []
    texts = [t.strip() for t in environ.get(CLIENTS_ENV, "").split(",") if t.strip()]
    if not texts:
        raise ConfigError(
            f"fleet.vtn is on but {CLIENTS_ENV} names no client (ID:SECRET:ROLE, role bl or ven)"
        )
    store = SqliteStore(fleet.vtn_db) if fleet.vtn_db is not None else MemoryStore()
    vtn = Vtn([parse_client(t) for t in texts], store)
    return vtn, [(vtn_router(vtn), PREFIX)]


async def close_vtn(vtn: Vtn) -> None:
    """Finish the VTN's notifications and close its SQLite file, if any."""
    await vtn.close()
    if isinstance(vtn.store, SqliteStore):
        vtn.store.close()
