"""Device layer, against the simulator over loopback TCP.

- `cycle`: Modbus requests per control cycle in steady state, counted on the wire (the
  simulator counts every request it receives) while a real SiteRunner cycles at the default
  `slow_every`; the first cycle (identification, start-up writes) is left out.
- `field_cooldown_50ms` / `no_cooldown`: requests and time of one fast-group poll of the whole
  hybrid system, of one full read, and of the first full read of a session."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bessai.config import SiteConfig
from bessai.control.audit import AuditLog
from bessai.control.site import SiteRunner
from bessai.modbus.client import ClientSettings, ModbusDevice
from bessai.modbus.profile import BUILTIN_PROFILES, PollGroup, load_builtin
from bessai.simulator.server import SimulatorServer

REPEATS = 30
CYCLES = 120
READ = 3  # function code
FIELD = ClientSettings(wait_after_connect_s=0.0, cooldown_s=0.05)


def _ms(values_s: list[float]) -> dict[str, float]:
    ordered = sorted(values_s)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
    }


async def _cycle() -> dict[str, Any]:
    server = SimulatorServer(port=0)
    await server.start()
    with tempfile.TemporaryDirectory() as tmp:
        audit = AuditLog(Path(tmp) / "audit.sqlite")
        config = SiteConfig.model_validate(
            {"id": "bench", "devices": [{"host": "127.0.0.1", "port": server.port}]}
        )
        runner = SiteRunner(config, audit, settings=FIELD)
        try:
            await runner.step()
            received = server.requests_received.copy()
            client_requests = runner.device.stats.requests
            fast_s: list[float] = []
            slow_s: list[float] = []
            for _ in range(CYCLES):
                record = await runner.step()
                if record.errors:
                    raise RuntimeError(f"cycle {record.cycle}: {record.errors[0]}")
                slow = record.cycle % config.slow_every == 1
                (slow_s if slow else fast_s).append(record.duration_s)
            on_wire = server.requests_received - received
        finally:
            await runner.device.close()
            audit.close()
            await server.stop()
    return {
        "slow_every": config.slow_every,
        "cycles": CYCLES,
        "requests_per_cycle": round(on_wire.total() / CYCLES, 3),
        "reads_per_cycle": round(on_wire[READ] / CYCLES, 3),
        "writes": on_wire.total() - on_wire[READ],
        "client_requests_per_cycle": round(
            (runner.device.stats.requests - client_requests) / CYCLES, 3
        ),
        "reads_per_fast_cycle": len(runner.device.plan({PollGroup.FAST})),
        "reads_per_slow_cycle": len(runner.device.plan({PollGroup.FAST, PollGroup.SLOW})),
        "fast_cycle": _ms(fast_s),
        "slow_cycle": _ms(slow_s),
    }


async def _polls(cooldown_s: float) -> dict[str, Any]:
    server = SimulatorServer(port=0)
    await server.start()
    device = ModbusDevice(
        "127.0.0.1",
        server.port,
        1,
        [load_builtin(name) for name in BUILTIN_PROFILES],
        ClientSettings(wait_after_connect_s=0.0, cooldown_s=cooldown_s),
    )
    try:
        started = time.perf_counter()
        first = await device.poll()
        first_s = time.perf_counter() - started
        figures: dict[str, Any] = {
            "first_full_read": {
                "requests": first.requests,
                "points": len(first.readings),
                "ms": round(first_s * 1000, 2),
            }
        }
        for label, groups in (("fast_poll", {PollGroup.FAST}), ("full_read", set(PollGroup))):
            times_s: list[float] = []
            requests = points = 0
            for _ in range(REPEATS):
                started = time.perf_counter()
                result = await device.poll(groups)
                times_s.append(time.perf_counter() - started)
                requests, points = result.requests, len(result.readings)
            figures[label] = {"requests": requests, "points": points, **_ms(times_s)}
        return figures
    finally:
        await device.close()
        await server.stop()


def run() -> dict[str, Any]:
    return {
        "note": "simulator and client in one process over 127.0.0.1; wait-after-connect excluded",
        "cycle": asyncio.run(_cycle()),
        "field_cooldown_50ms": asyncio.run(_polls(0.05)),
        "no_cooldown": asyncio.run(_polls(0.0)),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
