"""API under load: requests per second and latency percentiles of GET /api/v1/status and
GET /metrics, sent from a second process over loopback, while the gateway runs one simulated
site at a 1 s cycle with the field client settings. Reports whether the cycle kept its period
during each load phase (mean and longest time between cycles, overruns, cycle p99)."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bessai.api.keys import KeyStore, Role
from bessai.config import Config
from bessai.control.gateway import Gateway
from bessai.modbus.client import ClientSettings
from bessai.runtime.http import serve_http
from bessai.runtime.service import Runtime
from bessai.simulator.server import SimulatorServer

LOAD_S = 10.0
CONCURRENCY = 16
CYCLE_S = 1.0
REPO = Path(__file__).resolve().parents[1]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]


async def _load(url: str, key: str, duration_s: float, concurrency: int) -> dict[str, Any]:
    """The load generator's side (its own process): closed loop, `concurrency` clients."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers={"X-API-Key": key}, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.get(url)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = [x * 1000 for x in latencies]
    return {
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms_p50": round(_pct(ms, 0.50), 2) if ms else None,
        "latency_ms_p99": round(_pct(ms, 0.99), 2) if ms else None,
        "latency_ms_max": round(max(ms), 2) if ms else None,
    }


async def _phase(gateway: Gateway, url: str, key: str) -> dict[str, Any]:
    site = next(iter(gateway.sites.values()))
    site.counters.durations_s.clear()
    site.counters.overruns = 0
    stamps: list[float] = []
    listener = lambda record: stamps.append(time.monotonic())  # noqa: E731
    site.listeners.append(listener)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.api", "load", url, key, str(LOAD_S), str(CONCURRENCY),
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )  # fmt: skip
    out, _ = await proc.communicate()
    site.listeners.remove(listener)
    result: dict[str, Any] = json.loads(out)
    durations_ms = [d * 1000 for d in site.counters.durations_s]
    # Period kept: the time between the ends of consecutive cycles, over the whole phase.
    gaps_s = [b - a for a, b in itertools.pairwise(stamps)]
    result["cycles"] = len(stamps)
    result["cycle_period_s_mean"] = round(sum(gaps_s) / len(gaps_s), 3) if gaps_s else None
    result["cycle_period_s_max"] = round(max(gaps_s), 3) if gaps_s else None
    result["cycle_overruns"] = site.counters.overruns
    result["cycle_ms_p99"] = round(_pct(durations_ms, 0.99), 1) if durations_ms else None
    return result


async def _measure() -> dict[str, Any]:
    sim = SimulatorServer(port=0)
    await sim.start()
    with tempfile.TemporaryDirectory() as tmp:
        config = Config.model_validate(
            {
                "gateway": {"data_dir": tmp, "http_port": 0},
                # Like the embedded default: every cycle commits to the outbox for a lake
                # (without a sink the gateway would store no telemetry at all).
                "telemetry": {
                    "outbox_path": f"{tmp}/outbox.sqlite",
                    "sinks": [{"type": "lake", "path": f"{tmp}/lake", "flush_interval_s": 60}],
                },
                "sites": [
                    {
                        "id": "bench",
                        "cycle_s": CYCLE_S,
                        "devices": [{"port": sim.port, "wait_after_connect_s": 0.1}],
                    }
                ],
            }
        )
        key = KeyStore(config.keys_file).add("bench", Role.READ)
        runtime = Runtime(config, ClientSettings(wait_after_connect_s=0.1, timeout_s=1.0))
        await runtime.start()
        gateway = runtime.gateway
        http, port = await serve_http(runtime.monitor, "127.0.0.1", 0)
        await asyncio.sleep(2.0)
        base = f"http://127.0.0.1:{port}"
        try:
            result = {
                "cycle_s": CYCLE_S,
                "load_s": LOAD_S,
                "concurrency": CONCURRENCY,
                "status": await _phase(gateway, f"{base}/api/v1/status", key),
                "metrics": await _phase(gateway, f"{base}/metrics", key),
            }
        finally:
            await runtime.stop()
            http.should_exit = True
            await http.shutdown()
    await sim.stop()
    return result


def run() -> dict[str, Any]:
    return asyncio.run(_measure())


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "load":
        _, _, url, key, duration, concurrency = sys.argv
        print(json.dumps(asyncio.run(_load(url, key, float(duration), int(concurrency)))))
    else:
        print(json.dumps(run(), indent=2))
