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
from bessai.config import BatteryConfig, OptimizerConfig
from bessai.control.site import SiteRunner
from bessai.errors import ConfigError, DataError
from bessai.market.baselines import FORECASTERS
from bessai.market.datasets import ExogSource, load_dataset_csv, model_exog
from bessai.market.features import HISTORY_H, ExogMissingError
from bessai.market.predictor import Predictor, check_model_dir
from bessai.market.prices import PriceSeries, load_prices
from bessai.optimize import Bands, CarbonPrice, Schedule, StorageSpec
from bessai.optimize.horizon import (
    HorizonForecast,
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
    forecaster: str = ""  # the forecaster the plan was made on
    forecaster_note: str | None = None  # why it is the fallback, not the configured one


def site_wear_cost_per_mwh(optimizer: OptimizerConfig, battery: BatteryConfig) -> float:
    """The site's wear cost per MWh of cell throughput: configured, or what the degradation
    model gives for the battery's replacement cost."""
    if optimizer.degradation_per_mwh is not None:
        return optimizer.degradation_per_mwh
    return cycle_wear_cost_per_mwh(battery.replacement_cost_per_kwh)


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
    if config.fallback_forecaster not in FORECASTERS:
        raise ConfigError(
            f"site {site_id}: optimizer.fallback_forecaster {config.fallback_forecaster!r} is "
            f"not one of {', '.join(sorted(FORECASTERS))}"
        )
    if model_dir is None:
        return prices, None
    # A model that cannot run, or one trained on another unit or step than these prices.
    try:
        check_model_dir(model_dir, prices.unit, prices.step.total_seconds())
    except ConfigError as exc:
        raise ConfigError(f"site {site_id}: optimizer.forecaster: {exc}") from None
    predictor = Predictor(model_dir)
    check_exog(site_id, config, predictor)
    return prices, predictor


def exog_sources(site_id: str, config: OptimizerConfig) -> list[ExogSource]:
    """The site's `optimizer.exog` entries, each named by its config key in messages."""
    return [
        ExogSource(e.name, e.file, e.key, f"site {site_id}: optimizer.exog[{i}] ({e.name})")
        for i, e in enumerate(config.exog)
    ]


def check_exog(site_id: str, config: OptimizerConfig, predictor: Predictor) -> None:
    """The start's check of the exogenous inputs: every input the model's card names is
    configured, no other, and each file exists and holds the dataset and key the model was
    trained on. Whether the files cover the hours ahead is the planner's business (it falls
    back when they do not)."""
    needed = predictor.model.exog_inputs
    example = ", ".join(f'{{name = "{e.name}", file = "cen_{e.dataset.replace("-", "_")}_....csv"}}'
                        for e in needed)  # fmt: skip
    try:
        model_exog(
            needed,
            exog_sources(site_id, config),
            pd.DatetimeIndex([], tz="UTC"),
            how=f"add optimizer.exog = [{example}] (files from bessai market fetch --dataset)",
        )
    except DataError as exc:
        text = str(exc)
        prefix = "" if text.startswith(f"site {site_id}:") else f"site {site_id}: optimizer.exog: "
        raise ConfigError(prefix + text) from None


class _CachedReader:
    """Reads a fetched dataset file again only when it changed (the operator refreshes it)."""

    def __init__(self) -> None:
        self._files: dict[Path, tuple[tuple[int, int], pd.DataFrame]] = {}

    def __call__(self, path: Path) -> pd.DataFrame:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        hit = self._files.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        wide = load_dataset_csv(path)
        self._files[path] = (stamp, wide)
        return wide


class SchedulePlanner:
    """The slow loop of one site: forecast, plan from the measured SOC, hand to the cycle."""

    def __init__(
        self, site: SiteRunner, config: OptimizerConfig, carbon_country: str = "CHL"
    ) -> None:
        self.site = site
        self.config = config
        self.prices, self.predictor = planner_inputs(site.id, config)
        self.fallback = point_horizon(
            FORECASTERS[config.fallback_forecaster], scenario_days=config.scenario_days
        )
        self.forecaster: HorizonForecaster = (
            point_horizon(FORECASTERS[config.forecaster], scenario_days=config.scenario_days)
            if self.predictor is None
            else predictor_horizon(self.predictor, config.scenario_days)
        )
        self.exog = exog_sources(site.id, config)
        self._reader = _CachedReader()
        if self.predictor is not None and self.predictor.model.exog:
            self.forecaster = self._with_exog
        # The forecaster the last forecast was made on, and why it was the fallback.
        self.forecaster_used = config.forecaster
        self.forecaster_note: str | None = None
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

    def _with_exog(self, history: pd.Series, target: pd.DatetimeIndex, tz: str) -> HorizonForecast:
        """The model fed with its exogenous inputs from the configured files; when a file is
        missing or does not cover the hours the model reads (not refreshed), the fallback
        forecaster, with the reason kept for the status and logged once."""
        assert self.predictor is not None
        step = self.prices.step
        index = pd.date_range(target[0] - timedelta(hours=HISTORY_H + 24), target[-1], freq=step)
        try:
            frame = model_exog(
                self.predictor.model.exog_inputs, self.exog, index, reader=self._reader
            )
        except (DataError, OSError) as exc:  # a file removed, half written, renamed
            return self._fall_back(str(exc), history, target, tz)
        try:
            result = predictor_horizon(self.predictor, self.config.scenario_days, frame)(
                history, target, tz
            )
        except ExogMissingError as exc:  # the files do not cover the hours the model reads
            return self._fall_back(str(exc), history, target, tz)
        if self.forecaster_note is not None:
            log.info("exogenous inputs back; planning on the model again", site=self.site.id)
        self.forecaster_used, self.forecaster_note = self.config.forecaster, None
        return result

    def _fall_back(
        self, why: str, history: pd.Series, target: pd.DatetimeIndex, tz: str
    ) -> HorizonForecast:
        note = f"exogenous inputs unavailable: {why}"
        if note != self.forecaster_note:
            log.warning("forecaster falls back", site=self.site.id,
                        fallback=self.config.fallback_forecaster, reason=note)  # fmt: skip
        self.forecaster_used = self.config.fallback_forecaster
        self.forecaster_note = note
        return self.fallback(history, target, tz)

    def wear_cost_per_mwh(self) -> float:
        """The configured wear cost, or the one the degradation model gives for this battery:
        a plan that cycles for less than this wears the battery for nothing."""
        return site_wear_cost_per_mwh(self.config, self.site.config.battery)

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
        return Plan(
            schedule,
            plan_start,
            tuple(float(p) for p in forecast),
            offset,
            bands,
            self.forecaster_used,
            self.forecaster_note,
        )

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
