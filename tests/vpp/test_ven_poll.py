"""The VEN's poll against a VTN in-process (no simulator): registration, program filter,
paging past 50 events, targets, and an event the VTN withdraws is no longer acted on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx

from bessai.config import SiteConfig
from bessai.control.audit import AuditLog
from bessai.control.site import SiteRunner
from bessai.vpp.session import VtnSession
from bessai.vpp.times import format_datetime
from bessai.vpp.ven import Ven
from bessai.vpp.vtn.app import create_vtn_app
from bessai.vpp.vtn.service import Vtn
from tests.vpp.conftest import CLIENTS

BASE = "http://vtn/openadr3/3.1.0"


def event(program_id: str, target: str, limit_kw: float) -> dict[str, Any]:
    start = datetime.now(UTC) - timedelta(minutes=1)
    return {
        "programID": program_id,
        "targets": [target],
        "intervalPeriod": {"start": format_datetime(start), "duration": "PT1H"},
        "intervals": [
            {"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [limit_kw]}]}
        ],
    }


async def test_poll_follows_programs_pages_and_withdrawals(tmp_path: Path) -> None:
    vtn = Vtn(CLIENTS)
    app = create_vtn_app(vtn)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    bl = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
    form = {
        "grant_type": "client_credentials",
        "client_id": "bl-client",
        "client_secret": "bl-secret",
    }
    token = (await bl.post("/auth/token", data=form)).json()["access_token"]
    bl.headers["Authorization"] = f"Bearer {token}"
    followed = (await bl.post("/programs", json={"programName": "followed"})).json()["id"]
    other = (await bl.post("/programs", json={"programName": "other"})).json()["id"]
    for n in range(55):  # more than one page of 50
        await bl.post("/events", json=event(followed, "site-a", 2.0 + n))
    await bl.post("/events", json=event(other, "site-a", 0.5))  # not a followed program
    await bl.post("/events", json=event(followed, "site-b", 0.1))  # another VEN's

    config = SiteConfig.model_validate(
        {"id": "site-a", "vpp": {"enabled": True, "vtn_url": BASE, "client_id": "ven-a",
                                 "client_secret": "secret-a", "programs": ["followed"]}}
    )  # fmt: skip
    site = SiteRunner(config, cast(Any, None), AuditLog(tmp_path / "audit.sqlite"))
    ven = Ven(site, tmp_path / "vpp.json", session=VtnSession(config.vpp, http))
    try:
        await ven.cycle()
        assert ven.status.vtn_up, ven.status.last_error
        assert ven.status.ven_id is not None
        assert ven.status.resource_id is not None
        assert len(ven.events) == 55
        assert site.grid_event.active_limits(datetime.now(UTC))[0] == 2000.0  # the tightest
        tightest = next(
            i for i, e in ven.events.items() if e["intervals"][0]["payloads"][0]["values"] == [2.0]
        )
        await bl.delete(f"/events/{tightest}")
        await ven.cycle()
        assert tightest not in ven.events
        assert site.grid_event.active_limits(datetime.now(UTC))[0] == 3000.0
        await ven.cycle()  # idempotent: no second VEN, no second resource
        assert len(vtn.store.all("vens")) == 1
        assert len(vtn.store.all("resources")) == 1
    finally:
        await ven.close()
        await bl.aclose()
