"""The VTN mounted in the fleet backend's own app, the way `bessai fleet serve` can take it
(`create_fleet_app(ctx, extra_routers=[(vtn_router(vtn), prefix)])`): tokens, a program and an
event served next to the fleet API, errors still problem documents. No database is touched:
the VTN's routes never use the fleet's pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from bessai.vpp.spec import problems
from bessai.vpp.vtn.routes import vtn_router
from bessai.vpp.vtn.service import Vtn
from bessai.vpp.vtn.store import SqliteStore
from tests.vpp.conftest import CLIENTS

pytest.importorskip("asyncpg")


async def test_the_vtn_serves_inside_the_fleet_app(tmp_path: Path) -> None:
    from bessai.api.keys import KeyStore
    from bessai.api.security import Authorizer
    from bessai.config import ApiConfig, FleetConfig
    from bessai.fleet.app import create_fleet_app
    from bessai.fleet.consumer import ConsumerStats
    from bessai.fleet.context import FleetContext
    from bessai.fleet.metrics import FleetMetrics

    api = ApiConfig()
    stats = ConsumerStats()
    ctx = FleetContext(
        auth=Authorizer(api, KeyStore(tmp_path / "keys.json")), config=api, fleet=FleetConfig(),
        pool=cast(Any, None), stats=stats, metrics=FleetMetrics(stats),
    )  # fmt: skip
    vtn = Vtn(CLIENTS, SqliteStore(tmp_path / "vtn.sqlite"))
    app = create_fleet_app(ctx, extra_routers=[(vtn_router(vtn), "/openadr3/3.1.0")])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fleet/openadr3/3.1.0") as c:
        form = {"grant_type": "client_credentials"}
        token = (await c.post("/auth/token", data=form, auth=("bl-client", "bl-secret"))).json()
        bl = {"Authorization": f"Bearer {token['access_token']}"}
        program = await c.post("/programs", json={"programName": "fleet-vpp"}, headers=bl)
        assert program.status_code == 201, program.text
        payloads = [{"type": "SIMPLE", "values": [1]}]
        intervals = [{"id": 0, "payloads": payloads}]
        event = {"programID": program.json()["id"], "targets": ["site-a"], "intervals": intervals}
        made = await c.post("/events", json=event, headers=bl)
        assert made.status_code == 201, made.text
        assert problems("event", made.json()) == []
        bad = await c.post("/events", json={"programID": "no such"}, headers=bl)
        assert bad.status_code == 400
        assert problems("problem", bad.json()) == []
        fleet_api = await c.get("http://fleet/api/v1/fleet")
        assert fleet_api.status_code == 401  # the fleet's own routes keep their keys
    assert [p["programName"] for p in SqliteStore(tmp_path / "vtn.sqlite").all("programs")] == [
        "fleet-vpp"
    ]
