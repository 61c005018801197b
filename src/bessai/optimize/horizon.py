"""One planning step, shared by the gateway's planner and the intraday back-test.

Forecast the steps ahead from the prices known now, price the CO2 if asked, and optimise from
the SOC measured now: on the point forecast (the LP/MILP of :mod:`.solve`), or, when the
forecast carries price scenarios and a commitment is set, on the scenarios with recourse
(:mod:`.scenario`). ``bessai.control.planner.SchedulePlanner.plan`` and the back-test's
re-planning loop (``bessai.analysis.intraday``) both call :func:`plan_horizon`; a test checks
they produce the same plan from the same prices and SOC.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bessai.market.bands import Bands
from bessai.market.baselines import BandForecaster, Forecaster
from bessai.market.predictor import Predictor
from bessai.market.scenarios import empirical_scenarios
from bessai.optimize.problem import CarbonPrice, Risk
from bessai.optimize.scenario import ScenarioProblem, Scenarios, needs_switches, plan_scenarios
from bessai.optimize.schedule import Schedule
from bessai.optimize.solve import optimize
from bessai.optimize.storage import FloatArray, StorageSpec


@dataclass(frozen=True, slots=True)
class HorizonForecast:
    """What a forecaster says about the steps ahead: the price to plan on, optional p10/p50/p90
    bands and optional price scenarios (whose mean is ``point``)."""

    point: FloatArray
    bands: Bands | None = None
    scenarios: Scenarios | None = None


#: (prices known now, UTC index; the target steps; the market's time zone) -> the forecast.
HorizonForecaster = Callable[[pd.Series, pd.DatetimeIndex, str], HorizonForecast]


def point_horizon(
    point: Forecaster, bands: BandForecaster | None = None, scenario_days: int = 0
) -> HorizonForecaster:
    """A point forecaster (a naive one, or a model's plan price) as a horizon forecaster, with
    its bands and, with ``scenario_days`` > 0, the empirical scenarios of
    :func:`bessai.market.scenarios.empirical_scenarios` around its point."""

    def run(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> HorizonForecast:
        p = np.asarray(point(history, target, tz), dtype=np.float64)
        b = None if bands is None else bands(history, target, tz, p)
        sc = None
        if scenario_days > 0:
            paths = empirical_scenarios(history, target, p, scenario_days)
            sc = Scenarios(paths, np.full(len(paths), 1.0 / len(paths)))
        return HorizonForecast(p, b, sc)

    return run


def predictor_horizon(
    predictor: Predictor, scenario_days: int = 0, exog: pd.DataFrame | None = None
) -> HorizonForecaster:
    """A trained model (ONNX, :class:`Predictor`): its plan price and calibrated bands, for at
    most the model's horizon; ``exog``: the exogenous inputs its card names."""

    def run(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> HorizonForecast:
        predicted = predictor.predict(history, target[0].to_pydatetime(), exog=exog)
        n = min(len(target), len(predicted.p50))
        bands = Bands(p10=predicted.p10[:n], p50=predicted.p50[:n], p90=predicted.p90[:n])
        p = np.asarray(predicted.point[:n], dtype=np.float64)
        sc = None
        if scenario_days > 0:
            paths = empirical_scenarios(history, target[:n], p, scenario_days)
            sc = Scenarios(paths, np.full(len(paths), 1.0 / len(paths)))
        return HorizonForecast(p, bands, sc)

    return run


@dataclass(frozen=True, slots=True)
class PlanSettings:
    """How a horizon is planned: the storage, the step, the risk mode, the CO2 price of a
    forecast (None: revenue only) and, for scenario plans, how many first steps are executed
    before the next plan (None: plan on the point even when scenarios are given)."""

    storage: StorageSpec
    step_h: float
    risk: Risk | None = None
    carbon: Callable[[FloatArray], CarbonPrice] | None = None
    commit_steps: int | None = None


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """The prices known at planning time (UTC index), the steps to plan, the market's time
    zone, the measured SOC and the minimum SOC at the end (None: the SOC now)."""

    history: pd.Series
    target: pd.DatetimeIndex
    timezone: str
    soc_now_pct: float
    soc_final_pct: float | None = None


@dataclass(frozen=True, slots=True)
class HorizonPlan:
    """A planned horizon and the forecast it was planned on."""

    schedule: Schedule
    forecast: HorizonForecast


def plan_horizon(
    forecaster: HorizonForecaster, request: PlanRequest, settings: PlanSettings
) -> HorizonPlan:
    """Forecast ``request.target`` from ``request.history`` and plan it from the SOC now."""
    fc = forecaster(request.history, request.target, request.timezone)
    carbon = None if settings.carbon is None else settings.carbon(fc.point)
    schedule = None if carbon is not None else _scenario_plan(fc, request, settings)
    if schedule is not None:
        return HorizonPlan(schedule, fc)
    schedule = optimize(
        fc.point,
        settings.step_h,
        settings.storage,
        soc_initial_pct=request.soc_now_pct,
        soc_final_pct=request.soc_final_pct,
        bands=fc.bands,
        risk=settings.risk,
        carbon=carbon,
    )
    return HorizonPlan(schedule, fc)


def _scenario_plan(
    fc: HorizonForecast, request: PlanRequest, settings: PlanSettings
) -> Schedule | None:
    """The scenario plan when the forecast has scenarios and a commitment is set (None: plan
    on the point). Scenario plans have no CO2 term and no risk filters: those stay with the
    point plan, as do negative prices (:func:`needs_switches`)."""
    sc = fc.scenarios
    if sc is None or settings.commit_steps is None or settings.risk is not None:
        return None
    if needs_switches(sc):
        return None
    final = request.soc_now_pct if request.soc_final_pct is None else request.soc_final_pct
    problem = ScenarioProblem(
        sc, settings.step_h, settings.storage, request.soc_now_pct, final, settings.commit_steps
    )
    return plan_scenarios(problem)
