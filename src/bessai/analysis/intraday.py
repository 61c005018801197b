"""Re-planning during the day in the back-test, as the gateway runs.

Every ``every_steps`` the day's remaining steps are forecast from the prices published by then
and planned from the SOC the plant model reached, through
:func:`bessai.optimize.horizon.plan_horizon`: the gateway planner's own step. Only the steps
up to the next re-plan are executed and settled; the day still ends at the terminal SOC target,
so the daily perfect-foresight yardstick stays the same.

**Publication lag.** At a re-plan at time t, the prices known are those of the steps that
*started* before ``t - lag_steps`` steps. CEN publishes the real (ex-post) CMg with a delay:
its online marginal cost appears within the hour, the definitive values after days. The
back-test states its lag and is run with several (``docs/benchmarks.md``): 1 h (online CMg),
6 h, and 24 h (what the day-ahead plan had anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bessai.analysis.settle import Settle, Settlement
from bessai.errors import ConfigError
from bessai.market.baselines import BandForecaster, Forecaster
from bessai.market.prices import PriceSeries
from bessai.optimize.horizon import (
    HorizonForecaster,
    PlanRequest,
    PlanSettings,
    plan_horizon,
    point_horizon,
)
from bessai.optimize.storage import FloatArray


@dataclass(frozen=True, slots=True)
class Replan:
    """Re-plan every ``every_steps`` with prices published ``lag_steps`` steps late; with
    ``scenario_days`` > 0 plan on that many empirical scenarios with recourse after the
    committed steps (:mod:`bessai.optimize.scenario`)."""

    every_steps: int = 1
    lag_steps: int = 1
    scenario_days: int = 0

    def __post_init__(self) -> None:
        if self.every_steps < 1:
            raise ConfigError("back-test: re-plan every at least one step")
        if self.lag_steps < 0:
            raise ConfigError("back-test: the publication lag must be >= 0")
        if self.scenario_days < 0:
            raise ConfigError("back-test: scenario days must be >= 0")

    def to_json(self) -> dict[str, int]:
        return {
            "every_steps": self.every_steps,
            "lag_steps": self.lag_steps,
            "scenario_days": self.scenario_days,
        }


def join(parts: list[Settlement]) -> Settlement:
    """The settlements of consecutive pieces of a day as one."""
    return Settlement(
        charge_kw=np.concatenate([p.charge_kw for p in parts]),
        discharge_kw=np.concatenate([p.discharge_kw for p in parts]),
        soc_pct=np.concatenate([p.soc_pct for p in parts]),
        revenue=sum(p.revenue for p in parts),
        degradation_cost=sum(p.degradation_cost for p in parts),
        cell_throughput_kwh=sum(p.cell_throughput_kwh for p in parts),
    )


@dataclass(frozen=True, slots=True)
class Replanner:
    """A strategy run the gateway's way: its forecaster as a horizon forecaster, the planning
    settings, the re-plan period and lag, who executes the plans and the day's SOC target."""

    series: PriceSeries
    forecaster: HorizonForecaster
    settings: PlanSettings
    replan: Replan
    settle: Settle
    soc_final_pct: float

    @classmethod
    def of(
        cls,
        series: PriceSeries,
        point: Forecaster,
        bands: BandForecaster | None,
        base: PlanSettings,
        how: tuple[Replan, Settle, float],
    ) -> Replanner:
        """The re-planner of a back-test strategy (``how``: re-plan, settlement, SOC target)."""
        replan, settle, soc_final = how
        # A scenario plan commits the steps up to the next re-plan.
        commit = replan.every_steps if replan.scenario_days > 0 else None
        settings = PlanSettings(base.storage, base.step_h, base.risk, base.carbon, commit)
        forecaster = point_horizon(point, bands, replan.scenario_days)
        return cls(series, forecaster, settings, replan, settle, soc_final)

    def request(self, start: int, day_end: int, soc_now_pct: float) -> PlanRequest:
        """What the planner knows at step ``start``: the prices published by then."""
        return PlanRequest(
            self.series.published(start, self.replan.lag_steps),
            self.series.index[start:day_end],
            self.series.timezone,
            soc_now_pct,
            self.soc_final_pct,
        )

    def day(self, start: int, end: int, soc_now_pct: float) -> tuple[Settlement, FloatArray]:
        """Run one market day [start, end): re-plan, execute up to the next re-plan, repeat.
        Returns what was settled and the forecast each executed step was planned on."""
        parts: list[Settlement] = []
        forecast = np.full(end - start, np.nan)
        soc = soc_now_pct
        every = self.replan.every_steps
        for k in range(start, end, every):
            planned = plan_horizon(self.forecaster, self.request(k, end, soc), self.settings)
            stop = min(k + every, end)
            plan = planned.schedule
            done = self.settle(
                plan.charge_kw[: stop - k],
                plan.discharge_kw[: stop - k],
                self.series.prices.iloc[k:stop].to_numpy(dtype=np.float64),
                self.settings.step_h,
                self.settings.storage,
                soc,
            )
            forecast[k - start : stop - start] = planned.forecast.point[: stop - k]
            parts.append(done)
            soc = done.soc_end_pct
        return join(parts), forecast
