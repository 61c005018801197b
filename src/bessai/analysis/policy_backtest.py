"""The learned policy in the day-ahead rolling back-test: the same days, forecaster, settlement
and yardsticks as the optimizer's (:mod:`.backtest`), so the figures sit side by side.

Each market day the forecaster predicts the day (and the window beyond it) from the prices
before the day, as for the optimizer; a policy of observation layout 2 reads instead, at every
step, the card's forecaster re-made from the prices published by then (the card's lag), as the
intraday LP re-plans (`bessai backtest --replan-every-h 1 --lag-h ...`). The policy then
dispatches step by step in closed loop: each step it reads the SOC the settlement left, the
forecast window from that step and the clock, and its setpoint is executed by the same
settlement, one step at a time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np

from bessai.analysis.backtest import RollingRun, backtest_days
from bessai.analysis.result import BacktestResult
from bessai.analysis.settle import SETTLE_TEMP_C, Settle, Settlement, settle_plant
from bessai.market.days import Day
from bessai.market.prices import PriceSeries
from bessai.optimize.storage import FloatArray, StorageSpec
from bessai.policy.observation import SiteView, observation
from bessai.policy.runner import OnnxPolicy
from bessai.policy.windows import day_windows, forecaster_named, step_windows


@dataclass(frozen=True, slots=True)
class PolicyBacktest:
    """What the policy is judged on: the forecaster it reads (a layout-2 policy reads its
    card's), the battery, the SOC plan and who executes its setpoints."""

    storage: StorageSpec
    forecaster: str = "week-mean"
    soc_initial_pct: float = 50.0
    soc_final_pct: float | None = None
    first_day: date | None = None
    last_day: date | None = None
    settle: Settle = settle_plant


def _closed_loop(policy: OnnxPolicy, windows: FloatArray, run: RollingRun, day: Day) -> Settlement:
    """The policy dispatches the day step by step from the carried SOC."""
    _, s, e = day
    actual = run.values[s:e]
    b = run.storage
    dt = run.series.step_h
    steps: tuple[list[float], list[float], list[float]] = ([], [], [])
    soc = run.soc_now
    revenue = wear = cells = 0.0
    for t in range(e - s):
        view = SiteView(soc, SETTLE_TEMP_C, tuple(windows[t]), run.series.index[s + t])
        action, _ = policy.act(observation(view, policy.card))
        want_kw = action * (b.charge_limit_kw if action >= 0 else b.discharge_limit_kw)
        c = np.array([max(want_kw, 0.0)])
        d = np.array([max(-want_kw, 0.0)])
        one = run.settle(c, d, actual[t : t + 1], dt, b, soc)
        soc = one.soc_end_pct
        for out, value in zip(steps, (one.charge_kw, one.discharge_kw, one.soc_pct), strict=True):
            out.append(float(value[0]))
        revenue += one.revenue
        wear += one.degradation_cost
        cells += one.cell_throughput_kwh
    charge, discharge, soc_pct = (np.asarray(x) for x in steps)
    return Settlement(charge, discharge, soc_pct, revenue, wear, cells)


def policy_backtest(
    series: PriceSeries,
    policy: OnnxPolicy,
    spec: PolicyBacktest,
    on_day: Callable[[int, int], None] | None = None,
) -> BacktestResult:
    """The rolling back-test of `policy` over `[first_day, last_day]` (defaults as
    :func:`bessai.analysis.backtest.backtest`)."""
    card = policy.card
    predict = forecaster_named((card.layout == 2 and card.forecaster) or spec.forecaster)
    days, excluded = backtest_days(series, spec.first_day, spec.last_day)
    final = spec.soc_initial_pct if spec.soc_final_pct is None else spec.soc_final_pct
    run = RollingRun(series, spec.storage, spec.settle, days, excluded, spec.soc_initial_pct, final)
    width = policy.card.forecast_steps + 1
    for k, day in enumerate(days):
        _, s, e = day
        perfect = run.perfect_day(day)
        if card.layout == 2:
            windows = step_windows(series, s, e - s, width, (predict, card.lag_steps or 0))
        else:
            history = series.prices.iloc[:s].dropna()
            windows = day_windows(history, series.index[s], series, e - s, width, predict)
        done = _closed_loop(policy, windows, run, day)
        run.book(day, windows[:, 0], done, perfect)
        if on_day is not None:
            on_day(k + 1, len(days))
    return run.result("ppo")
