"""Fleet backend: JetStream -> PostgreSQL ingest rate with duplicates in the stream, and the
fleet API's latency for 1,000 sites.

- ingest: N envelopes (the gateway cycle's real site envelope, 19 values) are published to a
  JetStream stream first, a fraction of them twice under different message ids (a replay past
  the duplicate window, which JetStream cannot catch); then one `FleetConsumer` (the code
  `bessai fleet serve` runs) drains the stream into PostgreSQL, timed from bind to the last
  commit. Also with two `bessai fleet serve` processes sharing the durable consumer.
- api: 1,000 sites of synthetic state in the database, `bessai fleet serve` as a subprocess,
  and a closed-loop load of GET /api/v1/fleet from this process (8 keep-alive clients).

PostgreSQL runs in a temp dir (initdb + pg_ctl, fsync off as in the tests: the figure is the
pipeline's, not the disk's) and nats-server with JetStream file storage, both on loopback.
"""

# The bench polls counters and starts its few subprocesses from async code on purpose.
# ruff: noqa: ASYNC110, ASYNC220

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
from tests.fleet.harness import fleet_config_file
from tests.fleet.pg import PgCluster
from tests.telemetry.brokers import free_port, nats_process

from bench.api import _load
from bessai.api.keys import KeyStore, Role
from bessai.config import FleetConfig
from bessai.fleet.consumer import FleetConsumer
from bessai.fleet.migrations import migrate
from bessai.fleet.rows import parse_envelope
from bessai.fleet.store import DbOptions, open_pool, write_batch

N = 100_000
DUPLICATE_SHARE = 0.2
SITES = 100
API_SITES = 1_000
API_SECONDS = 10.0
API_CONCURRENCY = 8

VALUES: dict[str, float | int | str] = {
    "cycle": 123456, "soc_pct": 55.5, "battery_power_w": -1200.0, "battery_temp_c": 27.5,
    "pv_power_w": 3400.0, "grid_power_w": 150.0, "load_power_w": 2350.0,
    "inverter_power_w": 2200.0, "requested_w": -1200.0, "setpoint_w": -1200.0,
    "guard_outcome": "allowed", "controller": "schedule", "safety_state": "normal",
    "mode": "auto", "data_age_s": 0.412, "cycle_duration_s": 0.0213, "capacity_kwh": 15.0,
    "max_charge_w": 5000.0, "max_discharge_w": 5000.0,
}  # fmt: skip
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _envelope(site: int, seq: int, soc: float = 55.5, ts: datetime | None = None) -> bytes:
    doc = {
        "schema_version": 1, "site_id": f"site-{site:04d}", "device_id": None,
        "boot_id": "bench", "seq": seq,
        "ts": (ts or T0 + timedelta(seconds=5 * seq)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "historical": False, "kind": "telemetry", "values": {**VALUES, "soc_pct": soc},
    }  # fmt: skip
    return json.dumps(doc, separators=(",", ":")).encode()


async def _publish(port: int, n: int) -> tuple[int, float]:
    """n unique envelopes, DUPLICATE_SHARE of them again; returns (messages, seconds)."""
    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    js = nc.jetstream(publish_async_max_pending=4096)
    await js.add_stream(name="BESSAI", subjects=["bessai.v1.>"])
    started = time.perf_counter()
    dup_every = round(1 / DUPLICATE_SHARE)
    sent = 0
    for i in range(n):
        site, seq = i % SITES, i // SITES
        body = _envelope(site, seq)
        subject = f"bessai.v1.site-{site:04d}._.telemetry"
        await js.publish_async(subject, body)
        sent += 1
        if i % dup_every == 0:
            await js.publish_async(subject, body)
            sent += 1
    await js.publish_async_completed()
    elapsed = time.perf_counter() - started
    await nc.close()
    return sent, elapsed


TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def _proc_cpu_s(pid: int, children_done: bool = False) -> float:
    """CPU seconds of one process (user + system), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children_done:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime (reaped children)
    return ticks * TICK_S


def _tree_cpu_s(root: int) -> float:
    """CPU seconds of a process and its live and finished children (PostgreSQL's backends)."""
    total = _proc_cpu_s(root, children_done=True)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == root:
            total += _proc_cpu_s(int(stat.parent.name))
    return total


def _cpu_now(pg: PgCluster, nats_pid: int) -> dict[str, float]:
    postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
    own = os.times()
    return {
        "consumer": own.user + own.system,
        "postgres": _tree_cpu_s(postmaster),
        "nats": _proc_cpu_s(nats_pid),
    }


async def _count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        n: int = await conn.fetchval("SELECT count(*) FROM envelopes")
        return n
    finally:
        await conn.close()


async def _ingest_in_process(dsn: str, nats_port: int, sent: int, cpu: Any) -> dict[str, Any]:
    config = FleetConfig(nats_url=f"nats://127.0.0.1:{nats_port}", consumer="bench-one")
    pool = await open_pool(DbOptions(dsn, max_size=2))
    consumer = FleetConsumer(config, pool)
    stop = asyncio.Event()
    cpu_before = cpu()
    started = time.perf_counter()
    await consumer.start()
    task = asyncio.create_task(consumer.run(stop))
    stats = consumer.stats
    while stats.written_total + stats.duplicates_total < sent:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    cpu_after = cpu()
    stop.set()
    await task
    await consumer.close()
    await pool.close()
    return {
        "consumers": 1,
        "messages": sent,
        "rows_written": stats.written_total,
        "duplicates_skipped": stats.duplicates_total,
        "seconds": round(elapsed, 2),
        "messages_per_s": round(sent / elapsed),
        "rows_per_s": round(stats.written_total / elapsed),
        "batch_size": config.batch_size,
        # CPU per message of each component: what the machine's load cannot inflate.
        "cpu_us_per_message": {
            name: round((cpu_after[name] - cpu_before[name]) / sent * 1e6, 1) for name in cpu_after
        },
    }


async def _ingest_two_processes(dsn: str, nats_port: int, unique: int, tmp: Path) -> dict[str, Any]:
    procs = []
    started = time.perf_counter()
    for i in range(2):
        config = fleet_config_file(
            tmp / f"serve{i}", dsn, nats_port, free_port(), consumer="bench-two"
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bessai.cli", "fleet", "serve", "--config", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        while await _count(dsn) < unique:
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        for p in procs:
            p.terminate()
            p.wait(15)
    return {
        "consumers": 2,
        "rows_written": unique,
        "seconds_including_process_start": round(elapsed, 2),
        "rows_per_s": round(unique / elapsed),
    }


async def _fresh_db(pg: PgCluster) -> str:
    dsn = pg.new_database()
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await conn.close()
    return dsn


async def _ingest(pg: PgCluster, tmp: Path) -> dict[str, Any]:
    nats_srv = nats_process(tmp)
    nats_srv.start()
    try:
        sent, publish_s = await _publish(nats_srv.port, N)
        assert nats_srv.proc is not None
        pid = nats_srv.proc.pid
        one = await _ingest_in_process(
            await _fresh_db(pg), nats_srv.port, sent, lambda: _cpu_now(pg, pid)
        )
        two = await _ingest_two_processes(await _fresh_db(pg), nats_srv.port, N, tmp)
    finally:
        nats_srv.kill()
    return {
        "unique_envelopes": N,
        "stream_messages": sent,
        "duplicate_share": DUPLICATE_SHARE,
        "publish_messages_per_s": round(sent / publish_s),
        "one_consumer_in_process": one,
        "two_fleet_serve_processes": two,
    }


async def _seed_sites(dsn: str) -> None:
    pool = await open_pool(DbOptions(dsn))
    now = datetime.now(UTC)
    rows = [
        parse_envelope(_envelope(site, 0, soc=10 + site % 80, ts=now)) for site in range(API_SITES)
    ]
    await write_batch(pool, rows)
    await pool.close()


async def _api(pg: PgCluster, tmp: Path) -> dict[str, Any]:
    dsn = await _fresh_db(pg)
    await _seed_sites(dsn)
    nats_srv = nats_process(tmp)
    nats_srv.start()
    port = free_port()
    config = fleet_config_file(tmp / "api", dsn, nats_srv.port, port, stale_after_s=3600.0)
    key = KeyStore(tmp / "api" / "api_keys.json").add("bench", Role.READ)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bessai.cli", "fleet", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api/v1/fleet"
    try:
        for _ in range(600):
            try:
                async with httpx.AsyncClient() as client:
                    r = await client.get(url, headers={"X-API-Key": key})
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        size = len(r.content)
        assert len(r.json()["sites"]) == API_SITES
        result = await _load(url, key, API_SECONDS, API_CONCURRENCY)
    finally:
        proc.terminate()
        proc.wait(15)
        nats_srv.kill()
    return {"sites": API_SITES, "response_bytes": size, "concurrency": API_CONCURRENCY, **result}


async def _measure() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bessai-bench-fleet-") as folder:
        tmp = Path(folder)
        pg = PgCluster()
        pg.start()
        try:
            ingest = await _ingest(pg, tmp)
            api = await _api(pg, tmp)
        finally:
            pg.stop()
    return {"ingest": ingest, "api_fleet_1000_sites": api, "cpus": os.cpu_count()}


def run() -> dict[str, Any]:
    return asyncio.run(_measure())
