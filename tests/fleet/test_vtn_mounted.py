"""`[fleet] vtn = true`: the fleet service also serves the OpenADR 3.1 VTN of its VPP, with its
clients from the environment; the fleet's own API keys and the VTN's OAuth2 tokens stay apart."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bessai.config import FleetConfig
from bessai.errors import ConfigError
from bessai.fleet.vtn import fleet_vtn
from tests.fleet.harness import FleetProcess, read_key
from tests.telemetry.brokers import BrokerProcess

VTN = "/openadr3/3.1.0"


def test_a_vtn_without_clients_is_refused() -> None:
    assert fleet_vtn(FleetConfig(), {}) == (None, [])
    with pytest.raises(ConfigError, match="BESSAI_VTN_CLIENTS names no client"):
        fleet_vtn(FleetConfig(vtn=True), {})


async def test_fleet_serve_mounts_the_vtn(
    tmp_path: Path,
    fleet_dsn: str,
    nats_server: BrokerProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BESSAI_VTN_CLIENTS", "aggregator:s3cret:bl,site-a:ven-secret:ven")
    fleet = FleetProcess.create(
        tmp_path / "fleet", fleet_dsn, nats_server.port, vtn=True, vtn_db="vtn.sqlite"
    )
    fleet.start()
    try:
        async with httpx.AsyncClient(base_url=fleet.url(""), timeout=10) as client:
            token = await client.post(
                f"{VTN}/auth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "aggregator",
                    "client_secret": "s3cret",
                },
            )
            assert token.status_code == 200, token.text
            bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
            program = {"programName": "peak-shaving"}
            created = await client.post(f"{VTN}/programs", json=program, headers=bearer)
            assert created.status_code == 201, created.text
            listed = await client.get(f"{VTN}/programs", headers=bearer)
            assert [p["programName"] for p in listed.json()] == ["peak-shaving"]
            # The VTN's token is not a fleet API key, and the reverse.
            fleet_api = await client.get("/api/v1/fleet", headers=bearer)
            assert fleet_api.status_code == 401
            key = {"Authorization": f"Bearer {read_key(tmp_path / 'fleet')}"}
            assert (await client.get(f"{VTN}/programs", headers=key)).status_code in (401, 403)
            assert (await client.get("/api/v1/fleet", headers=key)).status_code == 200
    finally:
        fleet.stop()
    assert (tmp_path / "fleet" / "vtn.sqlite").is_file()
