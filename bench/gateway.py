"""Gateway: ten simulated sites in one process at a 1 s cycle, one site's simulator silent.
Reports cycle duration percentiles and period keeping of the healthy sites."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from typing import Any

from bessai.config import Config
from bessai.modbus.client import ClientSettings
from bessai.runtime.service import Runtime
from bessai.simulator.server import SimulatorServer

SITES = 10
RUN_S = 20.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]


async def _measure() -> dict[str, Any]:
    sims = [SimulatorServer(port=0) for _ in range(SITES)]
    for sim in sims:
        await sim.start()
    with tempfile.TemporaryDirectory() as tmp:
        sites = [
            {
                "id": f"s{i}",
                "cycle_s": 1.0,
                "devices": [{"port": sim.port, "timeout_s": 1.0, "wait_after_connect_s": 0.1}],
                "safety": {"stale_after_s": 3.0},
            }
            for i, sim in enumerate(sims)
        ]
        config = Config.model_validate({"gateway": {"data_dir": tmp}, "sites": sites})
        # Field cooldown (50 ms between requests) so the figures are those of a real deployment.
        runtime = Runtime(
            config, ClientSettings(wait_after_connect_s=0.1, timeout_s=1.0, retries=1)
        )
        await runtime.start()
        gateway = runtime.gateway
        await asyncio.sleep(2.0)
        sims[0].faults.silence_until = float("inf")
        for site in gateway.sites.values():
            site.counters.durations_s.clear()
            site.counters.overruns = 0
        await asyncio.sleep(RUN_S)
        healthy = [s for s in gateway.sites.values() if s.id != "s0"]
        durations_ms = [d * 1000 for s in healthy for d in s.counters.durations_s]
        failing = gateway.sites["s0"]
        result = {
            "sites": SITES,
            "cycle_s": 1.0,
            "run_s": RUN_S,
            "healthy_sites_cycles_per_s": round(
                statistics.mean(len(s.counters.durations_s) for s in healthy) / RUN_S, 3
            ),
            "healthy_sites_overruns": sum(s.counters.overruns for s in healthy),
            "cycle_ms_p50": round(_pct(durations_ms, 0.50), 1),
            "cycle_ms_p95": round(_pct(durations_ms, 0.95), 1),
            "cycle_ms_p99": round(_pct(durations_ms, 0.99), 1),
            "cycle_ms_max": round(max(durations_ms), 1),
            "failing_site_state": failing.safety_state.value,
            "failing_site_cycle_ms_max": round(max(failing.counters.durations_s or [0]) * 1000, 1),
        }
        await runtime.stop()
    for sim in sims:
        await sim.stop()
    return result


def run() -> dict[str, Any]:
    return asyncio.run(_measure())


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
