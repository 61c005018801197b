"""Three gateways on embedded simulators -> JetStream -> two `bessai fleet serve` processes
-> PostgreSQL. One consumer is SIGKILLed and the NATS server restarted mid-run; every
envelope the gateways' outboxes sent lands exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from tests.fleet.harness import FleetProcess, make_gateway, read_key, sent_keys
from tests.telemetry.brokers import BrokerProcess

pytestmark = pytest.mark.slow

SITES = ("g1", "g2", "g3")


async def db_keys(dsn: str) -> list[tuple[str, str, int]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT site_id, boot_id, seq FROM envelopes")
    finally:
        await conn.close()
    return [(r[0], r[1], r[2]) for r in rows]


async def db_count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        n: int = await conn.fetchval("SELECT count(*) FROM envelopes")
        return n
    finally:
        await conn.close()


async def test_exactly_once_through_consumer_kill_and_nats_restart(
    tmp_path: Path, fleet_dsn: str, nats_server: BrokerProcess
) -> None:
    fleets = [
        FleetProcess.create(
            tmp_path / f"fleet{i}",
            fleet_dsn,
            nats_server.port,
            batch_size=20,
            ack_wait_s=2.0,
            stale_after_s=3.0,
        )
        for i in (1, 2)
    ]
    gateways = [make_gateway(tmp_path, site, nats_server.port) for site in SITES]
    try:
        for f in fleets:
            f.start()
        for gw in gateways:
            await gw.start()
        # Both consumers take a share of the stream.
        for f in fleets:
            health = f.health
            await wait_until_async(lambda h=health: _written(h), 20, "both consumers writing")
        fleets[0].kill()
        await asyncio.sleep(1.5)
        nats_server.restart()
        await asyncio.sleep(2.0)
        # The killed consumer comes back and rejoins the shared durable.
        fleets[0].start()
        await asyncio.sleep(1.5)

        # A gateway that stops is stale within stale_after_s; the others stay online.
        key = read_key(tmp_path / "fleet2")
        await gateways[2].stop()
        await wait_until_async(lambda: _stale(fleets[1], key, "g3"), 3.0 + 3.0, "g3 stale")
        fleet = (await fleets[1].get("/api/v1/fleet", key)).json()
        online = {s["site_id"] for s in fleet["sites"] if not s["stale"]}
        assert online == {"g1", "g2"}
        assert fleet["totals"]["sites"] == 3
        assert fleet["totals"]["sites_stale"] == 1

        for gw in gateways[:2]:
            await gw.stop()
        expected: set[tuple[str, str, int]] = set()
        for gw in gateways:
            expected |= sent_keys(gw)
        assert {site for site, _, _ in expected} == set(SITES)
        assert len(expected) > 100

        deadline = asyncio.get_running_loop().time() + 30
        while await db_count(fleet_dsn) < len(expected):
            assert asyncio.get_running_loop().time() < deadline, "envelopes missing in the DB"
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.5)  # one ack_wait: a late redelivery would show as an extra row
        stored = await db_keys(fleet_dsn)
        assert len(stored) == len(expected)
        assert set(stored) == expected
        health = [await f.health() for f in fleets]
        assert all(h["lag_messages"] in (0, None) for h in health), health
    finally:
        for gw in gateways:
            await gw.stop()
        for f in fleets:
            f.stop()


async def _written(health: object) -> bool:
    assert callable(health)
    try:
        body = await health()
    except Exception:
        return False
    return int(body["written_total"]) > 0


async def _stale(fleet: FleetProcess, key: str, site: str) -> bool:
    body = (await fleet.get("/api/v1/fleet", key)).json()
    return any(s["site_id"] == site and s["stale"] for s in body["sites"])


async def wait_until_async(predicate: object, timeout_s: float, what: str) -> None:
    assert callable(predicate)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
