"""One running gateway: embedded simulators, the sites' devices, the control cycles, the
telemetry pipeline and the monitor (metrics, alerts), started and stopped in order."""

from __future__ import annotations

import asyncio
import functools
import time

import structlog

from bessai.config import Config
from bessai.control.emit import CycleEmitter
from bessai.control.gateway import Gateway
from bessai.devices.huawei import HuaweiHybrid
from bessai.devices.registry import open_device
from bessai.errors import ConfigError
from bessai.modbus.client import ClientSettings
from bessai.observe.metrics import GatewayMetrics
from bessai.observe.monitor import Monitor
from bessai.proxy import ProxyServer
from bessai.runtime.simulators import EmbeddedSimulators
from bessai.security.wiring import attach, watch_requests
from bessai.telemetry.pipeline import TelemetryPipeline
from bessai.vpp.metrics import VppMetrics
from bessai.vpp.ven import Ven

log = structlog.get_logger("bessai.runtime")

#: What the telemetry sinks may still send at stop; the rest waits in the outbox.
DRAIN_AT_STOP_S = 2.0


class Runtime:
    """`bessai run` without the terminal: tests and benchmarks use it directly."""

    def __init__(
        self,
        config: Config,
        settings: ClientSettings | None = None,
        stop_event: asyncio.Event | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        #: what stops the gateway; it may be set before or during start (an early Ctrl-C)
        self.stop_event = stop_event or asyncio.Event()
        self.simulators = EmbeddedSimulators()
        self.metrics = GatewayMetrics()
        self.telemetry = TelemetryPipeline(config.telemetry, registry=self.metrics.registry)
        self._gateway: Gateway | None = None
        self._monitor: Monitor | None = None
        #: the Modbus proxy ([proxy] enabled), listening before the first cycle
        self.proxy: ProxyServer | None = None
        #: the OpenADR VENs of the sites with [sites.vpp] enabled, by site id
        self.vens: dict[str, Ven] = {}
        self._ven_tasks: list[asyncio.Task[None]] = []

    @property
    def gateway(self) -> Gateway:
        if self._gateway is None:
            raise RuntimeError("the runtime has not started")
        return self._gateway

    @property
    def monitor(self) -> Monitor:
        if self._monitor is None:
            raise RuntimeError("the runtime has not started")
        return self._monitor

    async def start(self) -> None:
        """Simulators first (the sites point at their ports), then telemetry, then the cycles."""
        sites = [
            await self.simulators.start(site) if site.simulator.enabled else site
            for site in self.config.sites
        ]
        config = self.config.model_copy(update={"sites": sites})
        await self.telemetry.start()
        gateway = Gateway(
            config, functools.partial(open_device, settings=self.settings), self.stop_event
        )
        monitor = Monitor(gateway, self.telemetry, self.metrics, config.alerts)
        emitter = CycleEmitter(self.telemetry)
        for site in gateway.sites.values():
            site.emitters.append(emitter)
            # An embedded simulator's plant may run faster than the wall clock: the physics
            # checks integrate in its time.
            sim = self.simulators.servers.get(site.id)
            attach(site, clock=sim.plant_seconds if sim is not None else time.monotonic)
        self._gateway, self._monitor = gateway, monitor
        if config.proxy.enabled:
            self.proxy = _proxy(config, gateway, self.metrics)
            watch_requests(self.proxy.site, self.proxy.request_listeners)
            await self.proxy.start()
        monitor.start()
        await gateway.start()
        self._start_vens(gateway)

    def _start_vens(self, gateway: Gateway) -> None:
        """One VEN per site with [sites.vpp] enabled, polling beside the cycle."""
        vpp_metrics: VppMetrics | None = None
        for site in gateway.sites.values():
            if not site.config.vpp.enabled:
                continue
            vpp_metrics = vpp_metrics or VppMetrics(self.metrics.registry)
            cache = self.config.gateway.data_dir / "vpp" / f"{site.id}.json"
            ven = Ven(site, cache, vpp_metrics)
            site.listeners.append(ven.on_cycle)
            self.vens[site.id] = ven
            self._ven_tasks.append(
                asyncio.create_task(ven.run(self.stop_event), name=f"ven-{site.id}")
            )

    async def stop(self) -> None:
        """Stop dispatch first, then flush what telemetry can, then the rest. Bounded: see
        `Gateway.stop` and `DRAIN_AT_STOP_S`."""
        if self.proxy is not None:
            await self.proxy.stop()
        if self._gateway is not None:
            await self._gateway.stop()
        if self._ven_tasks:
            await asyncio.wait(self._ven_tasks, timeout=2.0)
            for task in self._ven_tasks:
                task.cancel()
        for ven in self.vens.values():
            await ven.close()
        # What the sinks have not acknowledged within the drain stays in the outbox for the
        # next start: nothing committed is lost.
        await self.telemetry.stop(drain_timeout_s=DRAIN_AT_STOP_S)
        await self.simulators.stop()
        if self._monitor is not None:
            await self._monitor.close()


def _proxy(config: Config, gateway: Gateway, metrics: GatewayMetrics) -> ProxyServer:
    """The proxy of the configured site, on that site's Modbus client."""
    site = gateway.sites[config.proxy_site]
    if not isinstance(site.device, HuaweiHybrid):
        raise ConfigError(f"proxy: site {site.id!r} has no Modbus device to re-serve")
    return ProxyServer(config.proxy, site, site.device.modbus, metrics.registry)
