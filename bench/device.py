"""Device layer: requests and time for one telemetry poll (fast group of the whole hybrid
system) and for one full read, against the simulator over loopback TCP."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from bessai.modbus.client import ClientSettings, ModbusDevice
from bessai.modbus.profile import BUILTIN_PROFILES, PollGroup, load_builtin
from bessai.simulator.server import SimulatorServer

REPEATS = 30


async def _measure(cooldown_s: float) -> dict[str, Any]:
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
            times_ms: list[float] = []
            requests = points = 0
            for _ in range(REPEATS):
                started = time.perf_counter()
                result = await device.poll(groups)
                times_ms.append((time.perf_counter() - started) * 1000)
                requests, points = result.requests, len(result.readings)
            figures[label] = {
                "requests": requests,
                "points": points,
                "median_ms": round(statistics.median(times_ms), 2),
                "p95_ms": round(sorted(times_ms)[int(0.95 * (len(times_ms) - 1))], 2),
            }
        return figures
    finally:
        await device.close()
        await server.stop()


def run() -> dict[str, Any]:
    return {
        "note": "simulator and client in one process over 127.0.0.1; wait-after-connect excluded",
        "field_cooldown_50ms": asyncio.run(_measure(0.05)),
        "no_cooldown": asyncio.run(_measure(0.0)),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
