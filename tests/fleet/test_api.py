"""The fleet API, page, metrics and `bessai fleet status` over a real PostgreSQL holding
known site states: totals computed by hand, a stale site flagged, keys as on the gateway."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import APIRouter
from typer.testing import CliRunner

from bessai import cli
from bessai.api.deps import READ, AuthFirstRoute
from bessai.api.keys import KeyStore, Role
from bessai.api.security import Authorizer
from bessai.config import ApiConfig, FleetConfig
from bessai.fleet.app import create_fleet_app
from bessai.fleet.consumer import ConsumerStats
from bessai.fleet.context import FleetContext
from bessai.fleet.metrics import FleetMetrics
from bessai.fleet.migrations import migrate
from bessai.fleet.rows import parse_envelope
from bessai.fleet.store import DbOptions, open_pool, write_batch
from tests.fleet.harness import fleet_config_file

#: site -> (soc %, capacity kWh, max charge W, max discharge W, safety, age s, alarms)
SITES: dict[str, tuple[float, float, float, float, str, float, str]] = {
    "north": (50.0, 10.0, 5000.0, 5000.0, "normal", 1.0, ""),
    "south": (80.0, 30.0, 10000.0, 20000.0, "normal", 2.0, "Grid Loss"),
    "west": (20.0, 20.0, 4000.0, 4000.0, "safe", 1.0, "Overtemperature"),
    "east": (90.0, 100.0, 50000.0, 50000.0, "normal", 600.0, ""),  # stale
}


def envelope(site: str, seq: int, ts: datetime, kind: str, values: dict[str, Any]) -> bytes:
    doc = {
        "schema_version": 1, "site_id": site, "device_id": None, "boot_id": "b", "seq": seq,
        "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "historical": False, "kind": kind,
        "values": values,
    }  # fmt: skip
    return json.dumps(doc).encode()


async def seed(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await conn.close()
    pool = await open_pool(DbOptions(dsn))
    rows = []
    # Ages count from now, when the test runs (not when the module was imported).
    now = datetime.now(UTC)
    for site, (soc, cap, ch, dis, safety, age, alarms) in SITES.items():
        ts = now - timedelta(seconds=age)
        # An hour of history, one envelope a minute, SOC rising to its current value.
        for i in range(60):
            values = {"soc_pct": soc - (59 - i) * 0.1, "battery_power_w": 1000.0,
                      "capacity_kwh": cap, "max_charge_w": ch, "max_discharge_w": dis,
                      "safety_state": safety, "mode": "auto"}  # fmt: skip
            t = ts - timedelta(minutes=59 - i)
            rows.append(parse_envelope(envelope(site, i, t, "telemetry", values)))
        if alarms:
            values = {"active": alarms, "raised": alarms, "cleared": "", "safety_state": safety}
            rows.append(parse_envelope(envelope(site, 60, ts, "alarm", values)))
    await write_batch(pool, rows)
    await pool.close()


class Fleet:
    def __init__(self, app: Any, keys: dict[str, str], ctx: FleetContext) -> None:
        self.app, self.keys, self.ctx = app, keys, ctx

    def client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=("127.0.0.1", 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://fleet")

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys['read']}"}


extra = APIRouter(route_class=AuthFirstRoute, dependencies=[READ])


@extra.get("/ping")
async def ping() -> dict[str, str]:
    return {"pong": "yes"}


@pytest.fixture
async def fleet(fleet_dsn: str, tmp_path: Path) -> AsyncIterator[Fleet]:
    await seed(fleet_dsn)
    store = KeyStore(tmp_path / "keys.json")
    keys = {"read": store.add("analyst", Role.READ)}
    api = ApiConfig()
    pool = await open_pool(DbOptions(fleet_dsn))
    stats = ConsumerStats(connected=True, lag_messages=0)
    ctx = FleetContext(
        auth=Authorizer(api, store), config=api, fleet=FleetConfig(stale_after_s=60.0),
        pool=pool, stats=stats, metrics=FleetMetrics(stats),
    )  # fmt: skip
    app = create_fleet_app(ctx, extra_routers=[(extra, "/api/v1/vtn")])
    yield Fleet(app, keys, ctx)
    await pool.close()


async def test_fleet_sites_and_totals(fleet: Fleet) -> None:
    async with fleet.client() as client:
        body = (await client.get("/api/v1/fleet", headers=fleet.auth())).json()
    sites = {s["site_id"]: s for s in body["sites"]}
    assert set(sites) == set(SITES)
    assert sites["east"]["stale"] is True
    assert [s for s in sites if sites[s]["stale"]] == ["east"]
    assert sites["south"]["alarms"] == ["Grid Loss"]
    assert sites["north"]["soc_pct"] == pytest.approx(50.0)
    t = body["totals"]
    assert (t["sites"], t["sites_online"], t["sites_stale"]) == (4, 3, 1)
    assert t["sites_safe"] == 1
    assert t["sites_alarmed"] == 2
    assert t["capacity_kwh"] == pytest.approx(60.0)  # east is stale: not counted
    assert t["soc_pct"] == pytest.approx((50 * 10 + 80 * 30 + 20 * 20) / 60, abs=1e-3)
    # north: charge min(5 kW x 1 h, 10 kWh x 48 %) = 4.8, discharge min(5, 10 x 45 %) = 4.5
    # south: charge min(10, 30 x 18 %) = 5.4, discharge min(20, 30 x 75 %) = 20
    # west is in SAFE and east is stale: no flexibility.
    assert t["charge_flex_kwh"] == pytest.approx(4.8 + 5.4)
    assert t["discharge_flex_kwh"] == pytest.approx(4.5 + 20.0)
    assert t["charge_flex_kw"] == pytest.approx(4.8 + 5.4)
    assert sites["west"]["discharge_flex_kwh"] == 0


async def test_keys_as_on_the_gateway(fleet: Fleet) -> None:
    async with fleet.client() as client:
        assert (await client.get("/api/v1/fleet")).status_code == 401
        bad = {"Authorization": "Bearer bess_nope"}
        assert (await client.get("/api/v1/fleet", headers=bad)).status_code == 401
        assert (await client.get("/api/v1/fleet?api_key=x")).status_code == 400
        spec = (await client.get("/api/v1/openapi.json", headers=fleet.auth())).json()
        assert "/api/v1/fleet" in spec["paths"]
        assert "/api/v1/fleet/sites/{site_id}/history" in spec["paths"]
        # A router mounted by another service gets the same key checks.
        assert "/api/v1/vtn/ping" in spec["paths"]
        assert (await client.get("/api/v1/vtn/ping")).status_code == 401
        ok = await client.get("/api/v1/vtn/ping", headers=fleet.auth())
        assert ok.json() == {"pong": "yes"}


async def test_history_is_downsampled(fleet: Fleet) -> None:
    start = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    async with fleet.client() as client:
        res = await client.get(
            "/api/v1/fleet/sites/north/history",
            params={"start": start, "step_s": 600, "fields": "soc_pct,battery_power_w"},
            headers=fleet.auth(),
        )
        assert res.status_code == 200, res.text
        body = res.json()
        assert body["step_s"] == 600
        assert sum(p["n"] for p in body["points"]) == 60
        assert 6 <= len(body["points"]) <= 7
        assert all(p["values"]["battery_power_w"] == 1000.0 for p in body["points"])
        socs = [p["values"]["soc_pct"] for p in body["points"]]
        assert socs == sorted(socs)
        missing = await client.get("/api/v1/fleet/sites/nowhere/history", headers=fleet.auth())
        assert missing.status_code == 404
        bad = await client.get(
            "/api/v1/fleet/sites/north/history", params={"fields": "Robert'); DROP"},
            headers=fleet.auth(),
        )  # fmt: skip
        assert bad.status_code == 422
        assert "not a value name" in bad.json()["detail"]


async def test_metrics_health_and_page(fleet: Fleet) -> None:
    async with fleet.client() as client:
        text = (await client.get("/metrics")).text
        assert "fleet_sites_active 3.0" in text
        assert "fleet_total_capacity_kwh 60.0" in text
        assert "fleet_consumer_lag_messages 0.0" in text
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json()["database"] is True
        page = await client.get("/fleet")
        assert page.status_code == 200
        assert "fleet.js" in page.text
        assert (await client.get("/static/fleet.js")).status_code == 200


def test_status_command_shows_sites_and_stale(fleet: Fleet, fleet_dsn: str, tmp_path: Path) -> None:
    config = fleet_config_file(tmp_path / "cli", fleet_dsn, 4222, 0)
    run = CliRunner().invoke(cli.app, ["fleet", "status", "--config", str(config)], env=WIDE)
    assert run.exit_code == 0, run.output
    for site in SITES:
        assert site in run.stdout
    assert run.stdout.count("STALE") == 1
    assert "4 sites, 3 online, 1 stale, 1 in SAFE" in " ".join(run.stdout.split())
    as_json = CliRunner().invoke(cli.app, ["fleet", "status", "--json", "--config", str(config)])
    doc = json.loads(as_json.stdout)
    assert doc["totals"]["capacity_kwh"] == pytest.approx(60.0)


def test_query_is_read_only(fleet_dsn: str, tmp_path: Path, fleet: Fleet) -> None:
    config = fleet_config_file(tmp_path / "cli", fleet_dsn, 4222, 0)
    sql = "SELECT site_id, count(*) AS n FROM envelopes GROUP BY 1 ORDER BY 1"
    ok = CliRunner().invoke(
        cli.app, ["fleet", "query", "--config", str(config), "--format", "csv", sql]
    )
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.splitlines()[:2] == ["site_id,n", "east,60"]
    # Through the real entry point: a refused write is one line, exit code 2.
    write = subprocess.run(
        [sys.executable, "-m", "bessai.cli", "fleet", "query", "--config", str(config),
         "DELETE FROM envelopes"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert write.returncode == 2
    assert "read-only transaction" in write.stderr
    assert "Traceback" not in write.stderr


WIDE = {"COLUMNS": "200"}
