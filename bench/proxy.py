"""Proxy: does re-serving the inverter to other clients slow the control cycle or load the
device? A site cycles against the simulator over loopback with the field client settings (50 ms
between requests, 1 s cycle, slow group every 12 cycles) and the proxy in front, while Modbus
clients in another process (as Home Assistant or evcc would be) read the whole profile through
the proxy with huawei-solar's batching:

- `no_clients`: the baseline;
- `clients_1hz`: 20 clients, each reading the whole profile once a second;
- `flood`: 20 clients reading as fast as the proxy lets them (its default per-connection rate).

Per scenario: cycle duration percentiles and overruns, device requests per cycle (counted by
the simulator), requests the proxy answered per second and how (from the cycle's image, read on
demand, busy), and the clients' request latency."""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bessai.config import ProxyConfig, SiteConfig
from bessai.control.audit import AuditLog
from bessai.control.site import CycleRecord, SiteRunner
from bessai.devices.huawei import HuaweiHybrid
from bessai.devices.registry import open_device
from bessai.modbus.client import ClientSettings
from bessai.proxy import ProxyServer
from bessai.simulator.server import SimulatorServer

CLIENTS = 20
CYCLES = 96
SLOW_EVERY = 12
CYCLE_S = 1.0
FIELD = ClientSettings(wait_after_connect_s=0.0, cooldown_s=0.05)
MAX_SPAN, MAX_GAP = 64, 16  # huawei-solar's batching
ANSWERS = ("cache", "forwarded", "busy", "exception")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def _plan(runner: SiteRunner) -> list[tuple[int, int]]:
    """The whole profile in huawei-solar's batches, as a third-party client reads it."""
    device = runner.device
    assert isinstance(device, HuaweiHybrid)
    modbus = device.modbus
    points = sorted(modbus.bound_points(), key=lambda bp: bp.point.address)
    spans: list[list[int]] = []
    block = None
    for bp in points:
        here = modbus.address_map.block_of(bp.point)
        if (
            spans
            and here == block
            and bp.point.end - spans[-1][0] <= MAX_SPAN
            and bp.point.address - spans[-1][1] < MAX_GAP
        ):
            spans[-1][1] = max(spans[-1][1], bp.point.end)
        else:
            spans.append([bp.point.address, bp.point.end])
            block = here
    return [(start, end - start) for start, end in spans]


# -- the clients, in their own process ---------------------------------------------------------


async def _client(port: int, plan: list[tuple[int, int]], period_s: float, run_s: float,
                  phase_s: float) -> tuple[list[float], Counter[str]]:  # fmt: skip
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
    await client.connect()
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    await asyncio.sleep(phase_s)
    end = time.monotonic() + run_s
    next_at = time.monotonic()
    while time.monotonic() < end:
        for start, count in plan:
            started = time.perf_counter()
            response = await client.read_holding_registers(start, count=count, device_id=1)
            latencies.append(time.perf_counter() - started)
            outcomes[
                "ok" if not response.isError() else f"exception {response.exception_code}"
            ] += 1
        next_at += period_s
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    client.close()
    return latencies, outcomes


def _clients_main(port: int, plan: list[tuple[int, int]], clients: int, period_s: float,
                  run_s: float, queue: Any) -> None:  # fmt: skip
    async def main() -> tuple[list[float], Counter[str]]:
        results = await asyncio.gather(
            *(_client(port, plan, period_s, run_s, i * period_s / clients) for i in range(clients))
        )
        latencies = [x for lat, _ in results for x in lat]
        outcomes: Counter[str] = sum((o for _, o in results), Counter())
        return latencies, outcomes

    queue.put(asyncio.run(main()))


# -- the gateway side --------------------------------------------------------------------------


async def _scenario(clients: int, period_s: float) -> dict[str, Any]:
    sim = SimulatorServer(port=0)
    await sim.start()
    with tempfile.TemporaryDirectory() as tmp:
        audit = AuditLog(Path(tmp) / "audit.sqlite")
        config = SiteConfig.model_validate(
            {
                "id": "bench",
                "cycle_s": CYCLE_S,
                "slow_every": SLOW_EVERY,
                "devices": [{"port": sim.port}],
            }
        )
        runner = SiteRunner(config, open_device(config, FIELD), audit)
        device = runner.device
        assert isinstance(device, HuaweiHybrid)
        proxy = ProxyServer(ProxyConfig(enabled=True, port=0), runner, device.modbus)
        await proxy.start()
        try:
            await runner.step()  # identification and start-up writes, before the count
            plan = _plan(runner)
            received: list[Counter[int]] = []
            durations: list[tuple[int, float]] = []
            enough = asyncio.Event()

            def count(record: CycleRecord) -> None:
                received.append(sim.requests_received.copy())
                durations.append((record.cycle, record.duration_s))
                if len(received) > CYCLES:
                    enough.set()

            runner.listeners.append(count)
            before = {a: _answered(proxy, a) for a in ANSWERS}
            stop = asyncio.Event()
            cycling = asyncio.create_task(runner.run(stop))
            queue: Any = None
            process = None
            if clients:
                ctx = multiprocessing.get_context("spawn")
                queue = ctx.Queue()
                run_s = CYCLES * CYCLE_S
                process = ctx.Process(
                    target=_clients_main,
                    args=(proxy.port, plan, clients, period_s, run_s, queue),
                )
                process.start()
            started = time.monotonic()
            await enough.wait()
            elapsed_s = time.monotonic() - started
            stop.set()
            await cycling
            latencies: list[float] = []
            outcomes: Counter[str] = Counter()
            if process is not None and queue is not None:
                latencies, outcomes = await asyncio.to_thread(queue.get, True, 120)
                process.join(timeout=10)
            publish_ms = _publish_ms(proxy)
        finally:
            await proxy.stop()
            await runner.device.close()
            audit.close()
            await sim.stop()
    # The window: CYCLES cycles after the first one counted (as the request count).
    window = durations[1 : CYCLES + 1]
    durations_ms = [d * 1000 for _, d in window]
    slow_ms = [d * 1000 for n, d in window if n % SLOW_EVERY == 1]
    fast_ms = [d * 1000 for n, d in window if n % SLOW_EVERY != 1]
    on_wire = received[CYCLES] - received[0]  # the reads of cycles 2..CYCLES+1
    answered = {a: _answered(proxy, a) - before[a] for a in ANSWERS}
    result: dict[str, Any] = {
        "clients": clients,
        "client_period_s": period_s if clients else None,
        "cycles": CYCLES,
        "cycle_ms_p50": round(_pct(durations_ms, 0.50), 1),
        "cycle_ms_p95": round(_pct(durations_ms, 0.95), 1),
        "cycle_ms_p99": round(_pct(durations_ms, 0.99), 1),
        "cycle_ms_max": round(max(durations_ms), 1),
        "fast_cycle_ms_p50": round(_pct(fast_ms, 0.50), 1),
        "fast_cycle_ms_p99": round(_pct(fast_ms, 0.99), 1),
        "slow_cycle_ms_p50": round(_pct(slow_ms, 0.50), 1),
        "slow_cycle_ms_max": round(max(slow_ms), 1),
        "overruns": runner.counters.overruns,
        "device_requests_per_cycle": round(on_wire.total() / CYCLES, 3),
        "proxy_answers_per_s": {a: round(n / elapsed_s, 1) for a, n in answered.items() if n},
        "device_reads_on_demand": proxy.reader.reads,
        # what the proxy adds to every cycle: taking the cycle's words when it ends
        "publish_ms_p50": round(publish_ms, 3),
    }
    if latencies:
        result["client_request_ms_p50"] = round(statistics.median(latencies) * 1000, 2)
        result["client_request_ms_p99"] = round(_pct(latencies, 0.99) * 1000, 2)
        result["client_outcomes"] = dict(outcomes)
    return result


def _publish_ms(proxy: ProxyServer, repeats: int = 200) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        proxy.image.publish()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def _answered(proxy: ProxyServer, answer: str) -> float:
    value = proxy.metrics.registry.get_sample_value(
        "bessai_proxy_requests_total", {"site": "bench", "answer": answer}
    )
    return float(value or 0.0)


def run() -> dict[str, Any]:
    return {
        "note": (
            "site, simulator and proxy in one process; the clients in another; 127.0.0.1; "
            f"{CYCLE_S:g} s cycle, slow group every 12 cycles, 50 ms between device requests"
        ),
        "no_clients": asyncio.run(_scenario(0, 1.0)),
        "clients_1hz": asyncio.run(_scenario(CLIENTS, 1.0)),
        "flood": asyncio.run(_scenario(CLIENTS, 0.0)),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
