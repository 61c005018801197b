"""The schedule planner: the slow loop beside a site's cycle. Every `replan_s` it forecasts the
next horizon's prices from a price file, optimises the battery from the SOC measured by the
cycle (model-predictive), and hands the plan to the site's schedule controller, which follows
the current slot and falls back when the plan grows older than `max_plan_age_s`."""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pandas as pd
import structlog

from bessai.carbon.marginal import Band, band_factors, default_bands
from bessai.config import OptimizerConfig
from bessai.control.site import SiteRunner
from bessai.errors import ConfigError
from bessai.market.baselines import FORECASTERS
from bessai.market.predictor import Predictor, check_model_dir
from bessai.market.prices import PriceSeries, load_prices
from bessai.optimize import Bands, CarbonPrice, Schedule, StorageSpec
from bessai.optimize.horizon import (
    HorizonForecaster,
    PlanRequest,
    PlanSettings,
    plan_horizon,
    point_horizon,
    predictor_horizon,
)
from bessai.optimize.storage import FloatArray
from bessai.plant.degradation import cycle_wear_cost_per_mwh

log = structlog.get_logger("bessai.planner")

#: Forecasting from prices older than this would plan on a different market.
MAX_PRICE_LAG = timedelta(days=7)

BUILTIN_PRICES = {"crucero-2023": "cen_cmg_crucero220_2022-12_2023.csv"}


def price_path(spec: str) -> Path:
    """The price file a site's `optimizer.prices` names (`builtin:NAME` or a path)."""
    if spec.startswith("builtin:"):
        name = spec.removeprefix("builtin:")
        if name not in BUILTIN_PRICES:
            raise ConfigError(
                f"unknown built-in price sample {name!r}; available: {', '.join(BUILTIN_PRICES)}"
            )
        return Path(str(resources.files("bessai.market").joinpath("data", BUILTIN_PRICES[name])))
    return Path(spec)


@dataclass(frozen=True, slots=True)
class Plan:
    """A site's current plan, where it starts in real time and what it was planned on."""

    schedule: Schedule
    start: datetime  # real (not replayed) UTC start of the first step
    forecast: tuple[float, ...]
    price_time_offset: timedelta  # replay: price-file time minus real time
    bands: Bands | None = None


def planner_inputs(site_id: str, config: OptimizerConfig) -> tuple[PriceSeries, Predictor | None]:
    """The price series and the trained forecaster a site's planner would use, checked as
    `bessai forecast predict` checks them: `bessai config check` and the gateway's start call
    this, so a missing, corrupt or mismatched model stops the start with one line."""
    model_dir: Path | None = None
    if config.forecaster.startswith("model:"):
        # A trained forecaster (`bessai forecast train`): ONNX models, p10/p50/p90.
        model_dir = Path(config.forecaster.removeprefix("model:"))
    elif config.forecaster not in FORECASTERS:
        raise ConfigError(
            f"site {site_id}: optimizer.forecaster {config.forecaster!r} is not one of "
            f"{', '.join(sorted(FORECASTERS))} or model:DIR"
        )
    prices = load_prices(
        price_path(config.prices),
        column=config.column,
        node=config.node,
        max_gap_h=config.max_gap_h,
    )
    if model_dir is None:
        return prices, None
    # A model that cannot run, or one trained on another unit or step than these prices.
    try:
        check_model_dir(model_dir, prices.unit, prices.step.total_seconds())
    except ConfigError as exc:
        raise ConfigError(f"site {site_id}: optimizer.forecaster: {exc}") from None
    return prices, Predictor(model_dir)


class SchedulePlanner:
    """The slow loop of one site: forecast, plan from the measured SOC, hand to the cycle."""

    def __init__(
        self, site: SiteRunner, config: OptimizerConfig, carbon_country: str = "CHL"
    ) -> None:
        self.site = site
        self.config = config
        self.prices, self.predictor = planner_inputs(site.id, config)
        self.forecaster: HorizonForecaster = (
            point_horizon(FORECASTERS[config.forecaster], scenario_days=config.scenario_days)
            if self.predictor is None
            else predictor_horizon(self.predictor, config.scenario_days)
        )
        self.co2_bands: tuple[Band, ...] | None = None
        if config.co2_price_per_t > 0:
            if self.prices.unit != "USD/MWh":
                raise ConfigError(
                    f"site {site.id}: optimizer.co2_price_per_t needs prices in USD/MWh (the "
                    f"CMg bands of the marginal factor), not {self.prices.unit}"
                )
            self.co2_bands = default_bands(carbon_country)
        self.last_plan: Plan | None = None
        self.plans = 0
        self.failures = 0
        site.schedule.max_age = timedelta(seconds=config.max_plan_age_s)
        if site.learned is not None:
            site.learned.fit(self.prices.step, self.prices.unit, config.forecaster)

    def _offset(self, now: datetime) -> timedelta:
        """Replay maps now onto the same moment of the price file's last full year."""
        if not self.config.replay:
            return timedelta(0)
        year = self.prices.end.year if self.prices.end.month > 1 else self.prices.end.year - 1
        target = now.replace(year=year, day=min(now.day, 28) if now.month == 2 else now.day)
        return target - now

    def wear_cost_per_mwh(self) -> float:
        """The configured wear cost, or the one the degradation model gives for this battery:
        a plan that cycles for less than this wears the battery for nothing."""
        if self.config.degradation_per_mwh is not None:
            return self.config.degradation_per_mwh
        return cycle_wear_cost_per_mwh(self.site.config.battery.replacement_cost_per_kwh)

    def battery(self) -> StorageSpec:
        cfg = self.site.config
        return StorageSpec(
            max_charge_kw=cfg.battery.max_charge_w / 1000.0,
            max_discharge_kw=cfg.battery.max_discharge_w / 1000.0,
            capacity_kwh=cfg.battery.capacity_kwh,
            eta_charge=self.config.eta_charge,
            eta_discharge=self.config.eta_discharge,
            soc_min_pct=cfg.safety.soc_min_pct,
            soc_max_pct=cfg.safety.soc_max_pct,
            degradation_per_mwh=self.wear_cost_per_mwh(),
            cycles_per_day=self.config.cycles_per_day,
        )

    def plan(self, now: datetime, soc_pct: float) -> Plan:
        """Forecast and optimise the next horizon from `soc_pct` (a plain function: CPU work)."""
        step = self.prices.step
        offset = self._offset(now)
        price_now = pd.Timestamp(now + offset)
        start = price_now.floor(step)
        steps = max(1, math.ceil(timedelta(hours=self.config.horizon_h) / step))
        target = pd.date_range(start, periods=steps, freq=step)
        history = self.prices.prices[self.prices.prices.index < start]
        if len(history) < 24 * 7 or history.index[-1] < start - MAX_PRICE_LAG:
            last = "nothing" if history.empty else f"{history.index[-1]:%Y-%m-%d %H:%M}"
            raise ConfigError(
                f"site {self.site.id}: the price file ends before {start:%Y-%m-%d %H:%M} UTC "
                f"(last price: {last}) or holds under a week of history; the forecaster needs "
                f"the last seven days up to at most {MAX_PRICE_LAG.days} days ago"
            )
        request = PlanRequest(history, target, self.prices.timezone, soc_pct)
        planned = plan_horizon(self.forecaster, request, self.settings())
        schedule, forecast, bands = planned.schedule, planned.forecast.point, planned.forecast.bands
        plan_start = start.to_pydatetime() - offset
        return Plan(schedule, plan_start, tuple(float(p) for p in forecast), offset, bands)

    def settings(self) -> PlanSettings:
        """How this site's horizons are planned (:func:`bessai.optimize.horizon.plan_horizon`,
        the step the intraday back-test runs too)."""
        carbon = None
        if self.co2_bands is not None:
            bands, price = self.co2_bands, self.config.co2_price_per_t

            def carbon(forecast: FloatArray) -> CarbonPrice:
                # Carbon-aware: the forecast's CMg says which unit will be on the margin.
                return CarbonPrice(price, band_factors(forecast, bands))

        commit = None
        if self.config.scenario_days > 0:
            # Only the steps until the next re-plan are executed for sure.
            commit = max(1, math.ceil(timedelta(seconds=self.config.replan_s) / self.prices.step))
        return PlanSettings(
            self.battery(),
            self.prices.step.total_seconds() / 3600.0,
            carbon=carbon,
            commit_steps=commit,
        )

    async def replan(self) -> Plan | None:
        record = self.site.last
        soc = None if record is None else record.measurements.soc_pct
        if soc is None:
            log.warning("no measured SOC yet; plan postponed", site=self.site.id)
            return None
        if record is not None and record.security is not None and record.security.suspect:
            # Readings the security monitor takes to be false must not steer the plan.
            log.warning("readings flagged by the security monitor; plan postponed",
                        site=self.site.id, suspect=list(record.security.suspect))  # fmt: skip
            return None
        now = datetime.now(UTC)
        try:
            plan = await asyncio.to_thread(self.plan, now, soc)
        except Exception as exc:  # the plan ages out and the site falls back; never crash
            self.failures += 1
            log.error("planning failed", site=self.site.id, error=str(exc))
            return None
        self.site.schedule.load(plan.schedule, plan.start, now, plan.bands)
        if self.site.learned is not None:
            self.site.learned.load_forecast(plan.forecast, plan.start, now)
        self.last_plan = plan
        self.plans += 1
        log.info(
            "new plan",
            site=self.site.id,
            status=plan.schedule.status,
            revenue=round(plan.schedule.revenue, 2),
            soc_pct=round(soc, 1),
        )
        return plan

    async def run(self, stop: asyncio.Event) -> None:
        # Wait for the cycle's first measurement, then plan on a fixed period.
        while not stop.is_set() and (
            self.site.last is None or self.site.last.measurements.soc_pct is None
        ):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
        while not stop.is_set():
            await self.replan()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.config.replan_s)
