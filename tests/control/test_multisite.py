"""Ten simulated sites in one process at a 1 s cycle: one site's simulator stops answering and
the other nine keep their period; the fleet view aggregates what is known."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bessai.config import Config
from bessai.control.safety import SafetyState
from bessai.runtime.service import Runtime
from bessai.simulator.server import SimulatorServer
from tests.conftest import FAST_SETTINGS

from .conftest import site_config


async def test_one_failing_site_never_stalls_the_others(tmp_path: Path) -> None:
    sims = [SimulatorServer(port=0) for _ in range(10)]
    for sim in sims:
        await sim.start()
    sites = [
        site_config(sim.port, id=f"s{i}", cycle_s=1.0, safety={"stale_after_s": 2.0}).model_dump()
        for i, sim in enumerate(sims)
    ]
    config = Config.model_validate({"gateway": {"data_dir": str(tmp_path)}, "sites": sites})
    runtime = Runtime(config, FAST_SETTINGS)
    try:
        await runtime.start()
        gateway = runtime.gateway
        await asyncio.sleep(1.5)
        sims[0].faults.silence_until = float("inf")
        cycles_before = {sid: s.counters.cycles for sid, s in gateway.sites.items()}
        await asyncio.sleep(5.0)
        for site_id, site in gateway.sites.items():
            done = site.counters.cycles - cycles_before[site_id]
            if site_id == "s0":
                continue
            assert 4 <= done <= 6, (site_id, done)
            assert site.counters.overruns == 0, site_id
            assert max(site.counters.durations_s) < 1.0
        failing = gateway.sites["s0"]
        assert failing.last is not None
        assert failing.last.safety_state is SafetyState.SAFE
        fleet = gateway.fleet()
        assert fleet.sites == 10
        assert fleet.sites_safe == 1
        assert fleet.capacity_kwh == 150
        assert fleet.weighted_soc_pct is not None
        assert 0 < fleet.available_discharge_w <= 9 * 5000
    finally:
        await runtime.stop()
        for sim in sims:
            await sim.stop()


async def test_a_crashing_site_task_is_restarted_and_counted(tmp_path: Path) -> None:
    sim = SimulatorServer(port=0)
    await sim.start()
    config = Config.model_validate(
        {"gateway": {"data_dir": str(tmp_path)}, "sites": [site_config(sim.port).model_dump()]}
    )
    runtime = Runtime(config, FAST_SETTINGS)
    try:
        await runtime.start()
        site = runtime.gateway.sites["t1"]
        original = site.step
        crashed = []

        async def crash_once() -> object:
            if not crashed:
                crashed.append(True)
                raise RuntimeError("a bug in a controller")
            return await original()

        site.step = crash_once  # type: ignore[method-assign]
        await asyncio.sleep(2.0)
        assert site.counters.restarts == 1
        assert site.counters.cycles >= 2
    finally:
        await runtime.stop()
        await sim.stop()
