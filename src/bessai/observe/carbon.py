"""Carbon accounting of a running gateway: every site's measured battery power, integrated per
interval (`[carbon] interval_s`) from its cycle records, booked under each factor method on its
own, exposed as metrics and to the API, and minted into energy credits when the ledger is on.

Methods at run time: the country's yearly average (location-based), the marginal factor
(location-based: a measured CSV, or derived from the CMg of the site's optimizer price series
at the interval's time, replay-mapped like the planner), and a supplier factor (market-based)
when configured. An interval whose marginal factor is unknown is counted under the methods
that know one, and the marginal totals say how much energy they miss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from bessai.carbon.embodied import Embodied, life_from_history
from bessai.carbon.factors import Basis, Factors, Kind, Method, country, load_factor_csv
from bessai.carbon.marginal import default_bands, marginal_from_prices
from bessai.carbon.meter import EnergyMeter, Interval
from bessai.config import CarbonConfig
from bessai.control.gateway import Gateway
from bessai.control.planner import SchedulePlanner
from bessai.control.site import CycleRecord
from bessai.errors import ConfigError
from bessai.observe.credits import Co2Claim, Minter

FactorAt = Callable[[datetime], float | None]


@dataclass(slots=True)
class Tally:
    """One site's energy and emissions under one method since the gateway started."""

    charged_kwh: float = 0.0
    discharged_kwh: float = 0.0
    charging_kg: float = 0.0
    discharging_kg: float = 0.0
    #: energy of intervals this method had no factor for
    uncovered_kwh: float = 0.0
    factor_g_kwh: float | None = None

    def add(self, interval: Interval, g_kwh: float | None) -> None:
        self.factor_g_kwh = g_kwh
        if g_kwh is None:
            self.uncovered_kwh += interval.charged_kwh + interval.discharged_kwh
            return
        self.charged_kwh += interval.charged_kwh
        self.discharged_kwh += interval.discharged_kwh
        self.charging_kg += interval.charged_kwh * g_kwh / 1000.0
        self.discharging_kg += interval.discharged_kwh * g_kwh / 1000.0

    @property
    def saved_kg(self) -> float:
        return self.discharging_kg - self.charging_kg


@dataclass(slots=True)
class SiteCarbon:
    """What the observer knows of one site: its meter, its factor sources, its tallies."""

    meter: EnergyMeter
    sources: dict[str, tuple[Method, FactorAt]]
    capacity_kwh: float
    tallies: dict[str, Tally] = field(default_factory=dict)


def planner_marginal(planner: SchedulePlanner, country_code: str) -> tuple[Method, FactorAt] | None:
    """The CMg-derived marginal factor of the price series the site's planner uses, looked up
    at the same (replay-mapped) time the planner plans on; None for non-USD/MWh series."""
    prices = planner.prices
    if prices.unit != "USD/MWh":
        return None
    factors = marginal_from_prices(
        prices.prices, prices.step, default_bands(country_code), node=prices.node
    )

    def at(ts: datetime) -> float | None:
        plan = planner.last_plan
        if plan is None and planner.config.replay:
            return None  # the replay offset is known once the planner has planned
        offset = plan.price_time_offset if plan is not None else timedelta(0)
        return factors.value_at(ts + offset)

    return factors.method, at


def _constant(factors: Factors) -> tuple[Method, FactorAt]:
    return factors.method, factors.value_at


def factor_sources(
    config: CarbonConfig, planner: SchedulePlanner | None, measured: Factors | None
) -> dict[str, tuple[Method, FactorAt]]:
    """The methods a site is accounted under, keyed by `Method.key`."""
    sources = [_constant(country(config.country).factors())]
    if measured is not None:
        sources.append(_constant(measured))
    elif config.marginal == "prices" and planner is not None:
        derived = planner_marginal(planner, config.country)
        if derived is not None:
            sources.append(derived)
    if config.market_factor_g_kwh is not None:
        market = Method(
            Kind.AVERAGE,
            Basis.MARKET,
            "supplier factor",
            f"contractual factor {config.market_factor_g_kwh:g} g/kWh ([carbon] "
            "market_factor_g_kwh)",
        )
        sources.append(_constant(Factors.constant(market, config.market_factor_g_kwh)))
    return {method.key: (method, at) for method, at in sources}


def measured_marginal(config: CarbonConfig) -> Factors | None:
    """The measured marginal factors file the configuration names, if any."""
    if config.marginal_factors is None:
        return None
    method = Method(
        Kind.MARGINAL,
        Basis.LOCATION,
        f"measured {config.marginal_factors.name}",
        f"marginal factors read from {config.marginal_factors}",
    )
    return load_factor_csv(config.marginal_factors, method)


def reference_embodied_kg_per_kwh(kg_per_kwh_capacity: float) -> float:
    """kg CO2e per kWh delivered for the reference dispatch (one 80 % cycle a day at 25 °C),
    for the live view; reports use the actual dispatch instead."""
    day = np.concatenate([np.linspace(10, 90, 17)[:-1], np.linspace(90, 10, 17)[:-1], [10] * 64])
    soc = np.concatenate([np.tile(day, 365), [10.0]])
    life = life_from_history(soc, 900.0, discharged_kwh=365 * 0.8)
    return Embodied(1.0, kg_per_kwh_capacity).per_kwh_discharged(life)


class _CreditsCollector(Collector):
    def __init__(self, minter: Minter) -> None:
        self._minter = minter

    def collect(self) -> Any:
        minted = CounterMetricFamily(
            "bessai_energy_credits_minted", "Energy credits in the ledger", labels=["site"]
        )
        kwh = CounterMetricFamily(
            "bessai_energy_credits_kwh", "Discharged energy minted as credits", labels=["site"]
        )
        for site, (count, wh, _) in dict(self._minter.ledger.state.by_site).items():
            minted.add_metric([site], count)
            kwh.add_metric([site], wh / 1000.0)
        yield minted
        yield kwh


class CarbonObserver:
    """A SiteRunner listener per site; `close` books the open intervals at stop."""

    def __init__(
        self,
        config: CarbonConfig,
        sites: Mapping[str, SiteCarbon],
        registry: CollectorRegistry,
        minter: Minter | None = None,
    ) -> None:
        self.config = config
        self.sites = dict(sites)
        self.minter = minter
        self.since = datetime.now(UTC)
        self.embodied_kg_per_kwh_discharged = reference_embodied_kg_per_kwh(
            config.embodied_kg_per_kwh
        )
        self.avoided = Gauge(
            "bessai_carbon_avoided_kg",
            "CO2 avoided by discharging minus caused by charging, since start (< 0: added)",
            ["site", "method"],
            registry=registry,
        )
        self.intensity = Gauge(
            "bessai_carbon_intensity_g_kwh",
            "Grid emission factor of the last accounted interval",
            ["site", "method"],
            registry=registry,
        )
        if minter is not None:
            registry.register(_CreditsCollector(minter))

    def observe(self, record: CycleRecord) -> None:
        site = self.sites.get(record.site_id)
        if site is None:
            return
        for interval in site.meter.add(record.ts, record.measurements.battery_power_w):
            self._book(site, interval)

    def _book(self, site: SiteCarbon, interval: Interval) -> None:
        values: dict[str, float | None] = {}
        for key, (_method, at) in site.sources.items():
            g_kwh = at(interval.start)
            g_kwh = g_kwh if g_kwh is not None and math.isfinite(g_kwh) else None
            values[key] = g_kwh
            tally = site.tallies.setdefault(key, Tally())
            tally.add(interval, g_kwh)
            self.avoided.labels(interval.site, key).set(tally.saved_kg)
            if g_kwh is not None:
                self.intensity.labels(interval.site, key).set(g_kwh)
        if self.minter is not None:
            key = f"location-{self.minter.co2_method}"
            g_kwh = values.get(key)
            self.minter.submit(interval, None if g_kwh is None else Co2Claim(key, g_kwh))

    def close(self) -> None:
        """Book every site's open interval (partial), then finish minting."""
        for site in self.sites.values():
            interval = site.meter.flush()
            if interval is not None:
                self._book(site, interval)
        if self.minter is not None:
            self.minter.close()

    def pending_kwh(self) -> tuple[float, float]:
        charged = sum(s.meter.pending_kwh[0] for s in self.sites.values())
        discharged = sum(s.meter.pending_kwh[1] for s in self.sites.values())
        return charged, discharged


def attach_carbon(gateway: Gateway, registry: CollectorRegistry) -> CarbonObserver | None:
    """Build the observer for a gateway's sites (None when `[carbon] enabled = false`) and
    subscribe it to their cycle records; opens the ledger when `[ledger] enabled`."""
    config = gateway.config
    if not config.carbon.enabled:
        if config.ledger.enabled:
            raise ConfigError("ledger.enabled needs carbon.enabled: credits are minted from it")
        return None
    measured = measured_marginal(config.carbon)
    minter = Minter.from_config(config) if config.ledger.enabled else None
    sites: dict[str, SiteCarbon] = {}
    for site_id, runner in gateway.sites.items():
        meter = EnergyMeter(
            site_id,
            config.carbon.interval_s,
            config.carbon.max_gap_s,
            not_before=minter.resume_after(site_id) if minter is not None else None,
        )
        sources = factor_sources(config.carbon, gateway.planners.get(site_id), measured)
        sites[site_id] = SiteCarbon(meter, sources, runner.config.battery.capacity_kwh)
    observer = CarbonObserver(config.carbon, sites, registry, minter)
    for runner in gateway.sites.values():
        runner.listeners.append(observer.observe)
    return observer
