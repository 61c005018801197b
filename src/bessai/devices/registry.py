"""Which implementation serves a configured device kind. The only place that names vendors: the
gateway asks here for a `HybridDevice` and never imports a vendor module itself."""

from __future__ import annotations

from bessai.config import SiteConfig
from bessai.devices.base import HybridDevice
from bessai.devices.huawei import HuaweiHybrid
from bessai.errors import ConfigError
from bessai.modbus.client import ClientSettings


def open_device(site: SiteConfig, settings: ClientSettings | None = None) -> HybridDevice:
    """The hybrid device of a site, not yet connected (it connects on its first read).

    `settings` replaces the configured Modbus connection habits (tests and benchmarks use
    shorter waits than a real device needs)."""
    device = site.device
    if device.kind == "huawei_hybrid":
        return HuaweiHybrid(
            device,
            site.dispatch,
            name=f"{site.id}/{device.host}:{device.port}/{device.unit_id}",
            stale_after_s=site.safety.stale_after_s,
            slow_stale_after_s=site.safety.stale_after_s + site.slow_every * site.cycle_s,
            settings=settings,
        )
    raise ConfigError(f"site {site.id}: no implementation for device kind {device.kind!r}")
