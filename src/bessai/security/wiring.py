"""Attach a security monitor to a site's cycle (the runtime and the benchmark call this)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bessai.control.site import SiteRunner
from bessai.devices.huawei import HuaweiHybrid
from bessai.security.monitor import SecurityMonitor, SiteGeometry


def attach(site: SiteRunner, clock: Callable[[], float] = time.monotonic) -> SecurityMonitor | None:
    """Watch `site` when its config enables the monitor and its device speaks Modbus (the only
    kind there is today); returns the monitor, or None when the site is not watched."""
    config = site.config
    if not config.security.enabled or not isinstance(site.device, HuaweiHybrid):
        return None
    battery = config.battery
    geometry = SiteGeometry(
        capacity_wh=battery.capacity_kwh * 1000.0,
        max_power_w=max(battery.max_charge_w, battery.max_discharge_w),
        cycle_s=config.cycle_s,
    )
    monitor = SecurityMonitor(config.security, site.device.modbus, geometry, clock)
    site.assessor = monitor
    site.listeners.append(monitor.observe)
    return monitor


def watch_requests(site: SiteRunner, listeners: list[Any]) -> bool:
    """Feed other clients' requests (the Modbus proxy's `request_listeners`) to the site's
    monitor, for sweeps and write bursts; False when the site is not watched."""
    if not isinstance(site.assessor, SecurityMonitor):
        return False
    listeners.append(site.assessor.requests.observe)
    return True
