"""The gateway: many sites in one asyncio loop, each isolated so a failing site never stalls
another, a supervisor that restarts a crashed site task, the fleet view, and a shutdown that
stops dispatch within a bounded time. Simulators, telemetry, alerts and the HTTP server are
wired around it by `bessai.runtime`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from bessai.config import Config, SiteConfig
from bessai.control.audit import AuditLog
from bessai.control.planner import SchedulePlanner
from bessai.control.safety import SafetyState
from bessai.control.site import SiteRunner
from bessai.control.state import StateStore
from bessai.devices.base import HybridDevice

log = structlog.get_logger("bessai.gateway")

RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
#: A cycle still running this long after stop was asked is waiting on a silent device.
STOP_GRACE_S = 2.0
#: Time each site has to write its stop command when the gateway stops.
SHUTDOWN_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class FleetView:
    sites: int
    sites_safe: int
    capacity_kwh: float
    weighted_soc_pct: float | None
    available_charge_w: float
    available_discharge_w: float
    alarms: dict[str, tuple[str, ...]]


DeviceFactory = Callable[[SiteConfig], HybridDevice]


class Gateway:
    """The sites of one gateway process, each cycling in its own supervised task.

    `device_factory` makes each site's device (`bessai.devices.registry.open_device` in
    production, a fake in tests): the gateway never names a vendor."""

    def __init__(
        self,
        config: Config,
        device_factory: DeviceFactory,
        stop_event: asyncio.Event | None = None,
    ) -> None:
        self.config = config
        data_dir = config.gateway.data_dir
        self.audit = AuditLog(data_dir / "audit.sqlite")
        self.state = StateStore(data_dir / "site_state.json")
        self.sites: dict[str, SiteRunner] = {
            site.id: SiteRunner(site, device_factory(site), self.audit, self.state)
            for site in config.sites
        }
        self.planners: dict[str, SchedulePlanner] = {
            site.id: SchedulePlanner(self.sites[site.id], site.optimizer, config.carbon.country)
            for site in config.sites
            if site.optimizer.enabled
        }
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: set to stop every cycle; given by the caller when a signal may come before start
        self.stop_event = stop_event or asyncio.Event()

    async def start(self) -> None:
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
                log.exception("site task crashed; restarting", site=site_id, restarts=restarts)
                delay_s = RESTART_BACKOFF_S[min(restarts - 1, len(RESTART_BACKOFF_S) - 1)]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_event.wait(), timeout=delay_s)

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop the cycles, stop dispatch on every device, close everything, within a bounded
        time: a cycle still waiting on a silent device after `grace_s` is cancelled, and each
        site gets `SHUTDOWN_TIMEOUT_S` to write its stop. The device-side expiry of the
        forcible command stays the backstop for a device that does not answer."""
        self.stop_event.set()
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("cancelled cycles still waiting on their device",
                            tasks=sorted(t.get_name() for t in pending))  # fmt: skip
                await asyncio.wait(pending, timeout=1.0)
        await asyncio.gather(*(self._shutdown(site) for site in self.sites.values()))
        self.audit.close()

    async def _shutdown(self, site: SiteRunner) -> None:
        try:
            async with asyncio.timeout(SHUTDOWN_TIMEOUT_S):
                await site.shutdown()
        except TimeoutError:
            log.error("device did not take the stop in time; its forcible period ends it",
                      site=site.id, timeout_s=SHUTDOWN_TIMEOUT_S)  # fmt: skip
            with contextlib.suppress(Exception):
                await site.device.close()

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
