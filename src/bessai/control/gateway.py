"""The gateway process: many sites in one asyncio loop, each isolated so a failing site never
stalls another, a supervisor that restarts a crashed site task, the fleet view, embedded
simulators for sites that ask for one, and a graceful shutdown that stops dispatch."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from bessai.config import Config, DispatchConfig, SiteConfig
from bessai.control.audit import AuditLog
from bessai.control.emit import CycleEmitter
from bessai.control.planner import SchedulePlanner
from bessai.control.safety import SafetyState
from bessai.control.site import SiteRunner
from bessai.modbus.client import ClientSettings, ClientStats
from bessai.observe.alerts import AlertManager, WebhookSender
from bessai.observe.metrics import GatewayMetrics
from bessai.simulator.device import SimulatedHybrid
from bessai.simulator.plant import PhysicsPlant, PlantConfig
from bessai.simulator.scenario import ScenarioRunner, check_scenario, load_scenario, scenario_path
from bessai.simulator.server import SimulatorServer
from bessai.telemetry.pipeline import TelemetryPipeline

log = structlog.get_logger("bessai.gateway")

RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class FleetView:
    sites: int
    sites_safe: int
    capacity_kwh: float
    weighted_soc_pct: float | None
    available_charge_w: float
    available_discharge_w: float
    alarms: dict[str, tuple[str, ...]]


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


class Gateway:
    def __init__(self, config: Config, settings: ClientSettings | None = None) -> None:
        self.config = config
        self.metrics = GatewayMetrics()
        data_dir = config.gateway.data_dir
        self.audit = AuditLog(data_dir / "audit.sqlite")
        self._settings = settings
        self.sites: dict[str, SiteRunner] = {}
        self.simulators: dict[str, SimulatorServer] = {}
        self._scenarios: list[ScenarioRunner] = []
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.planners: dict[str, SchedulePlanner] = {}
        self.stop_event = asyncio.Event()
        self.metrics.watch_devices(self._device_stats)
        self.telemetry = TelemetryPipeline(config.telemetry, registry=self.metrics.registry)
        self._emitter = CycleEmitter(self.telemetry)
        alerts = config.alerts
        self.alerts = AlertManager(
            alerts,
            self.metrics.registry,
            WebhookSender(alerts) if alerts.webhook_url is not None else None,
        )

    def _report_telemetry(self, _record: object) -> None:
        health = self.telemetry.health()
        self.alerts.report_telemetry(health.reasons, str(health.outbox.get("storage", "ok")))

    def _device_stats(self) -> Iterator[tuple[str, str, ClientStats]]:
        for site in self.sites.values():
            yield site.id, site.device.name, site.device.stats

    async def _start_simulator(self, site: SiteConfig) -> SiteConfig:
        sim_cfg = site.simulator
        plant = PhysicsPlant(
            PlantConfig(
                initial_soc_pct=sim_cfg.initial_soc_pct,
                capacity_kwh=site.battery.capacity_kwh,
                max_charge_power_w=site.battery.max_charge_w,
                max_discharge_power_w=site.battery.max_discharge_w,
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
        self.simulators[site.id] = server
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

    async def start(self) -> None:
        await self.telemetry.start()
        for site_cfg in self.config.sites:
            if site_cfg.simulator.enabled:
                site_cfg = await self._start_simulator(site_cfg)
            site = SiteRunner(site_cfg, self.audit, self.metrics, self._settings)
            site.emitters.append(self._emitter)
            site.listeners.append(functools.partial(self.alerts.observe, site))
            site.listeners.append(self._report_telemetry)
            self.sites[site_cfg.id] = site
            if site_cfg.optimizer.enabled:
                self.planners[site_cfg.id] = SchedulePlanner(site, site_cfg.optimizer)
        if self.alerts.webhook is not None:
            self.alerts.webhook.start()
        for site_id in self.sites:
            self._tasks[site_id] = asyncio.create_task(
                self._supervise(site_id), name=f"site-{site_id}"
            )
        for site_id, planner in self.planners.items():
            self._tasks[f"{site_id}/planner"] = asyncio.create_task(
                planner.run(self.stop_event), name=f"planner-{site_id}"
            )

    async def _supervise(self, site_id: str) -> None:
        """Run one site; if its task crashes, log it, count it and start it again."""
        restarts = 0
        while not self.stop_event.is_set():
            site = self.sites[site_id]
            try:
                await site.run(self.stop_event)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                restarts += 1
                site.counters.restarts += 1
                self.metrics.site_restarts.labels(site_id).inc()
                log.exception("site task crashed; restarting", site=site_id, restarts=restarts)
                delay_s = RESTART_BACKOFF_S[min(restarts - 1, len(RESTART_BACKOFF_S) - 1)]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_event.wait(), timeout=delay_s)

    async def stop(self) -> None:
        """Graceful: stop the cycles, stop dispatch on every device, close everything."""
        self.stop_event.set()
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=30)
        await asyncio.gather(*(site.shutdown() for site in self.sites.values()))
        # What the sinks have not acknowledged within the drain stays in the outbox for the
        # next start: nothing committed is lost.
        await self.telemetry.stop(drain_timeout_s=5.0)
        for runner in self._scenarios:
            await runner.stop()
        for server in self.simulators.values():
            await server.stop()
        await self.alerts.close()
        self.audit.close()

    def fleet(self) -> FleetView:
        capacity_kwh = 0.0
        weighted = 0.0
        weight = 0.0
        charge_w = discharge_w = 0.0
        alarms: dict[str, tuple[str, ...]] = {}
        safe = 0
        for site in self.sites.values():
            cap_kwh = site.config.battery.capacity_kwh
            capacity_kwh += cap_kwh
            record = site.last
            if record is None:
                continue
            m = record.measurements
            in_safe = record.safety_state is SafetyState.SAFE
            if in_safe:
                safe += 1
            if m.soc_pct is not None:
                weighted += m.soc_pct * cap_kwh
                weight += cap_kwh
            if not in_safe and m.soc_pct is not None:
                if m.soc_pct < site.config.safety.soc_max_pct:
                    charge_w += site.guard.power_limit_w(m, charging=True)[0]
                if m.soc_pct > site.config.safety.soc_min_pct:
                    discharge_w += site.guard.power_limit_w(m, charging=False)[0]
            if m.alarms:
                alarms[site.id] = m.alarms
        return FleetView(
            sites=len(self.sites),
            sites_safe=safe,
            capacity_kwh=capacity_kwh,
            weighted_soc_pct=weighted / weight if weight else None,
            available_charge_w=charge_w,
            available_discharge_w=discharge_w,
            alarms=alarms,
        )
