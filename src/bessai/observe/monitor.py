"""What an operator sees of a running gateway: its sites, their metrics and alerts, and the
telemetry pipeline's health, in one object the HTTP API, `/health` and the terminal status read.

The monitor subscribes to every site's cycle records; the control cycle knows nothing of it."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator

from bessai.config import AlertsConfig
from bessai.control.gateway import Gateway
from bessai.control.site import CycleRecord
from bessai.devices.base import DeviceStats
from bessai.observe.alerts import AlertManager, WebhookSender
from bessai.observe.carbon import CarbonObserver, attach_carbon
from bessai.observe.history import RecentHistory
from bessai.observe.metrics import GatewayMetrics
from bessai.observe.policy import attach_policy
from bessai.telemetry.pipeline import TelemetryPipeline


class Monitor:
    def __init__(
        self,
        gateway: Gateway,
        telemetry: TelemetryPipeline,
        metrics: GatewayMetrics,
        alerts_config: AlertsConfig,
    ) -> None:
        self.gateway = gateway
        self.telemetry = telemetry
        self.metrics = metrics
        self.alerts = AlertManager(
            alerts_config,
            metrics.registry,
            WebhookSender(alerts_config) if alerts_config.webhook_url is not None else None,
        )
        #: the last hour of every site's key values, for the dashboard's charts
        self.history = RecentHistory({s.id: s.config.cycle_s for s in gateway.sites.values()})
        metrics.watch_devices(self._device_stats)
        metrics.watch_restarts(self._restarts)
        attach_policy(gateway, metrics.registry)
        for site in gateway.sites.values():
            site.listeners.append(metrics.observe)
            site.listeners.append(self.history.observe)
            site.listeners.append(functools.partial(self.alerts.observe, site))
            site.listeners.append(self._report_telemetry)
        self.carbon: CarbonObserver | None = attach_carbon(gateway, metrics.registry)

    def _device_stats(self) -> Iterator[tuple[str, str, DeviceStats]]:
        for site in self.gateway.sites.values():
            yield site.id, site.device.name, site.device.stats

    def _restarts(self) -> Iterator[tuple[str, int]]:
        for site in self.gateway.sites.values():
            yield site.id, site.counters.restarts

    def _report_telemetry(self, _record: CycleRecord) -> None:
        health = self.telemetry.health()
        self.alerts.report_telemetry(health.reasons, str(health.outbox.get("storage", "ok")))

    def start(self) -> None:
        if self.alerts.webhook is not None:
            self.alerts.webhook.start()

    async def close(self) -> None:
        await self.alerts.close()
        if self.carbon is not None:
            # Books the open intervals and waits for the ledger's writes (off the loop).
            await asyncio.to_thread(self.carbon.close)
