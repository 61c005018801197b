"""The intraday back-test re-plans through the gateway planner's own step: same function, and
the same plan from the same prices, SOC and battery."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

import bessai.analysis.intraday as intraday
import bessai.control.planner as planner_module
from bessai.analysis.intraday import Replan, Replanner
from bessai.analysis.settle import settle_plant
from bessai.config import OptimizerConfig
from bessai.control.planner import SchedulePlanner
from bessai.control.site import SiteRunner
from bessai.market.baselines import FORECASTERS
from bessai.optimize.horizon import PlanSettings, plan_horizon
from bessai.simulator.server import SimulatorServer

NOW = datetime(2026, 7, 14, 12, 30, tzinfo=UTC)


def _pair(
    make_runner: Callable[..., SiteRunner], scenario_days: int
) -> tuple[SchedulePlanner, Replanner, int]:
    config = OptimizerConfig(
        enabled=True,
        prices="builtin:crucero-2023",
        replay=True,
        replan_s=3600,
        max_plan_age_s=7200,
        scenario_days=scenario_days,
    )
    gateway = SchedulePlanner(make_runner(), config)
    series = gateway.prices
    start = pd.Timestamp(NOW + gateway._offset(NOW)).floor(series.step)
    k = int(series.index.get_loc(start))
    base = PlanSettings(gateway.battery(), series.step_h)
    # Lag 0: the gateway's price file holds every price before now.
    how = (Replan(every_steps=1, lag_steps=0, scenario_days=scenario_days), settle_plant, 50.0)
    replanner = Replanner.of(series, FORECASTERS["week-mean"], None, base, how)
    return gateway, replanner, k


def test_both_call_the_one_planning_step() -> None:
    assert planner_module.plan_horizon is plan_horizon
    assert intraday.plan_horizon is plan_horizon


@pytest.mark.parametrize("scenario_days", [0, 7])
def test_gateway_and_backtest_make_the_same_plan(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner], scenario_days: int
) -> None:
    gateway, replanner, k = _pair(make_runner, scenario_days)
    assert replanner.settings == gateway.settings()
    mine = gateway.plan(NOW, 50.0).schedule
    theirs = plan_horizon(
        replanner.forecaster, replanner.request(k, k + 24, 50.0), replanner.settings
    ).schedule
    assert mine.solver == ("scenario-lp" if scenario_days else "lp")
    np.testing.assert_array_equal(mine.charge_kw, theirs.charge_kw)
    np.testing.assert_array_equal(mine.discharge_kw, theirs.discharge_kw)
    np.testing.assert_array_equal(mine.prices, theirs.prices)
