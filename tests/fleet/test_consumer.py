"""The stream consumer against real nats-server and PostgreSQL: duplicates in the stream are
stored once, poison messages are terminated (counted, never redelivered, never blocking the
batch they came in), and a message the database refuses is isolated from its batch."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import nats
import pytest

from bessai.config import FleetConfig
from bessai.errors import BessaiError
from bessai.fleet.consumer import FleetConsumer
from bessai.fleet.migrations import migrate
from bessai.fleet.store import DbOptions, open_pool
from tests.fleet.pg import make_certs
from tests.fleet.test_store import envelope
from tests.process import LOOPBACK, find_binary, free_port
from tests.telemetry.brokers import BrokerProcess


async def publish(port: int, bodies: list[bytes]) -> None:
    nc = await nats.connect(f"nats://{LOOPBACK}:{port}")
    js = nc.jetstream()
    await js.add_stream(name="BESSAI", subjects=["bessai.v1.>"])
    for body in bodies:
        await js.publish("bessai.v1.a._.telemetry", body)
    await nc.close()


async def test_duplicates_once_poison_terminated(
    fleet_dsn: str, nats_server: BrokerProcess
) -> None:
    good = [envelope("a", s, soc_pct=float(s)) for s in range(50)]
    nul = json.dumps(json.loads(envelope("a", 50, note="x"))).replace('"x"', '"\\u0000"')
    bodies = [*good[:30], b"{not json", envelope("a/b", 1), *good, nul.encode()]
    await publish(nats_server.port, bodies)
    conn = await asyncpg.connect(fleet_dsn)
    await migrate(conn)
    pool = await open_pool(DbOptions(fleet_dsn))
    config = FleetConfig(nats_url=f"nats://{LOOPBACK}:{nats_server.port}", batch_size=16,
                         ack_wait_s=1.0)  # fmt: skip
    consumer = FleetConsumer(config, pool)
    stop = asyncio.Event()
    await consumer.start()
    task = asyncio.create_task(consumer.run(stop))
    try:
        stats = consumer.stats
        for _ in range(300):
            if stats.written_total + stats.duplicates_total + stats.rejected_total >= len(bodies):
                break
            await asyncio.sleep(0.05)
        assert stats.written_total == 50
        assert stats.duplicates_total == 30
        assert stats.rejected_total == 3
        assert await conn.fetchval("SELECT count(*) FROM envelopes") == 50
        await asyncio.sleep(1.5)  # past ack_wait: nothing comes back
        assert stats.rejected_total == 3
        assert stats.written_total + stats.duplicates_total == 80
        for _ in range(60):
            if stats.lag_messages == 0:
                break
            await asyncio.sleep(0.1)
        assert stats.lag_messages == 0
    finally:
        stop.set()
        await task
        await consumer.close()
        await pool.close()
        await conn.close()


async def test_a_slow_or_lost_database_delays_but_loses_nothing(
    fleet_dsn: str, nats_server: BrokerProcess
) -> None:
    """The table locked by someone else (a slow database), then the consumer's connections
    killed (a lost one): consumption stalls and the lag shows it, then everything lands once."""
    conn = await asyncpg.connect(fleet_dsn)
    await migrate(conn)
    pool = await open_pool(DbOptions(fleet_dsn))
    config = FleetConfig(nats_url=f"nats://{LOOPBACK}:{nats_server.port}", batch_size=50)
    consumer = FleetConsumer(config, pool)
    stop = asyncio.Event()
    await publish(nats_server.port, [envelope("a", s) for s in range(100)])
    locker = await asyncpg.connect(fleet_dsn)
    tx = locker.transaction()
    await tx.start()
    await locker.execute("LOCK TABLE envelopes IN ACCESS EXCLUSIVE MODE")
    await consumer.start()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await asyncio.sleep(2.5)
        assert consumer.stats.written_total == 0
        assert consumer.stats.lag_messages == 100  # all still pending or unacked
        # Kill the consumer's blocked connection: the write fails and is retried.
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND pid <> $1",
            locker.get_server_pid(),
        )
        await tx.rollback()
        js_more = [envelope("a", s) for s in range(100, 150)]
        nc = await nats.connect(f"nats://{LOOPBACK}:{nats_server.port}")
        for body in js_more:
            await nc.jetstream().publish("bessai.v1.a._.telemetry", body)
        await nc.close()
        for _ in range(200):
            if await conn.fetchval("SELECT count(*) FROM envelopes") == 150:
                break
            await asyncio.sleep(0.05)
        assert await conn.fetchval("SELECT count(*) FROM envelopes") == 150
        assert consumer.stats.db_errors_total >= 1
    finally:
        stop.set()
        await task
        await consumer.close()
        await pool.close()
        await locker.close()
        await conn.close()


async def test_tls_to_nats_is_verified(tmp_path: Path, fleet_dsn: str) -> None:
    """nats_tls_ca_file: the consumer binds over TLS to a server the CA signed."""
    certs = make_certs(tmp_path / "pki")
    port = free_port()
    store = tmp_path / "js"
    store.mkdir()
    server = BrokerProcess(
        "nats-server",
        [find_binary("nats-server"), "-js", "-a", LOOPBACK, "-p", str(port), "-sd", str(store),
         "--tls", "--tlscert", str(certs["server"]), "--tlskey", str(certs["server_key"])],
        port, tmp_path / "nats.log",
    )  # fmt: skip
    server.start()
    conn = await asyncpg.connect(fleet_dsn)
    await migrate(conn)
    await conn.close()
    pool = await open_pool(DbOptions(fleet_dsn))
    try:
        config = FleetConfig(nats_url=f"tls://{LOOPBACK}:{port}", nats_tls_ca_file=certs["ca"])
        consumer = FleetConsumer(config, pool)
        await consumer.start()
        assert consumer.stats.connected
        await consumer.close()
        other = make_certs(tmp_path / "other")
        refused = FleetConfig(nats_url=f"tls://{LOOPBACK}:{port}", nats_tls_ca_file=other["ca"])
        with pytest.raises(BessaiError, match="cannot connect to NATS"):
            await FleetConsumer(refused, pool).start()
    finally:
        await pool.close()
        server.kill()
