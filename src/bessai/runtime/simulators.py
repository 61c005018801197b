"""Embedded simulators for sites that ask for one (`[sites.simulator] enabled = true`): each
starts on a free loopback port and the site's device is pointed at it."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import structlog

from bessai.config import DispatchConfig, SiteConfig
from bessai.simulator.device import SimulatedHybrid
from bessai.simulator.plant import PhysicsPlant, PlantConfig
from bessai.simulator.scenario import ScenarioRunner, check_scenario, load_scenario, scenario_path
from bessai.simulator.server import SimulatorServer

log = structlog.get_logger("bessai.runtime")


def sped_up_dispatch(dispatch: DispatchConfig, speed: float) -> DispatchConfig:
    """The dispatch settings for a simulator running ``speed`` times faster than the clock.

    The simulated device counts its forcible period in plant time, the dispatcher refreshes in
    wall-clock time: at x120 a 2-minute period lapses after one real second, and the command
    flickers on and off between refreshes. So the period is stretched by the speed (to the
    register's 60-minute limit) and refreshed at least twice within its wall-clock length.
    """
    if speed <= 1.0:
        return dispatch
    stretched = math.ceil(dispatch.forcible_period_min * speed)
    period_min = min(60, max(dispatch.forcible_period_min, stretched))
    period_wall_s = period_min * 60.0 / speed
    refresh_s = min(dispatch.refresh_s, period_wall_s / 2)
    return dispatch.model_copy(update={"forcible_period_min": period_min, "refresh_s": refresh_s})


class EmbeddedSimulators:
    """The simulators of one gateway process, with their scenarios."""

    def __init__(self) -> None:
        self.servers: dict[str, SimulatorServer] = {}
        self._scenarios: list[ScenarioRunner] = []

    async def start(self, site: SiteConfig) -> SiteConfig:
        """Start the site's simulator; returns the site config pointed at it."""
        sim_cfg = site.simulator
        plant = PhysicsPlant(
            PlantConfig(
                initial_soc_pct=sim_cfg.initial_soc_pct,
                capacity_kwh=site.battery.capacity_kwh,
                max_charge_w=site.battery.max_charge_w,
                max_discharge_w=site.battery.max_discharge_w,
                load_mean_w=sim_cfg.load_mean_w,
                pv_peak_w=sim_cfg.pv_peak_w,
            ),
            now=datetime.now(UTC),
        )
        device = site.device
        server = SimulatorServer(
            SimulatedHybrid(plant), device.host, device.port, speed=sim_cfg.speed
        )
        scenario = None
        if sim_cfg.scenario is not None:
            scenario = load_scenario(scenario_path(sim_cfg.scenario))
            check_scenario(scenario, server, sim_cfg.scenario)
        await server.start()
        self.servers[site.id] = server
        if scenario is not None:
            runner = ScenarioRunner(scenario, server)
            runner.start()
            self._scenarios.append(runner)
        log.info("embedded simulator started", site=site.id, port=server.port)
        devices = [
            d.model_copy(update={"port": server.port}) if d is device else d for d in site.devices
        ]
        dispatch = sped_up_dispatch(site.dispatch, sim_cfg.speed)
        if dispatch != site.dispatch:
            log.info(
                "forcible period scaled to the simulator's speed",
                site=site.id,
                speed=sim_cfg.speed,
                period_min=dispatch.forcible_period_min,
                refresh_s=dispatch.refresh_s,
            )
        return site.model_copy(update={"devices": devices, "dispatch": dispatch})

    async def stop(self) -> None:
        for runner in self._scenarios:
            await runner.stop()
        for server in self.servers.values():
            await server.stop()
