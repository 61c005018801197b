"""The LP as the learned policy's teacher (`bessai policy teach`): the intraday LP re-planned at
every step on the forecaster the policy reads, run through the rolling back-test, recorded as
demonstrations (:mod:`bessai.policy.demonstrations`): per executed step the SOC before it, the
forecast window the policy would read there, and the action the LP took."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import numpy as np

from bessai.analysis.backtest import backtest, backtest_days
from bessai.analysis.intraday import Replan
from bessai.market.prices import PriceSeries
from bessai.optimize.storage import StorageSpec
from bessai.policy.demonstrations import FORMAT, Demonstrations
from bessai.policy.windows import forecaster_named, step_windows


def lp_demonstrations(
    series: PriceSeries,
    forecaster: str,
    lag_steps: int,
    storage: StorageSpec,
    *,
    forecast_steps: int = 24,
    period: tuple[date | None, date | None] = (None, None),
    on_day: Callable[[int, int], None] | None = None,
) -> Demonstrations:
    """What the LP re-planned every step (prices published `lag_steps` late) did over `period`,
    as (observation, action) pairs of observation layout 2."""
    first_day, last_day = period
    replan = Replan(every_steps=1, lag_steps=lag_steps)
    result = backtest(series, forecaster, storage, first_day=first_day, last_day=last_day,
                      on_day=on_day, replan=replan)  # fmt: skip
    days, _ = backtest_days(series, first_day, last_day)
    first = days[0][1]
    predict = forecaster_named(forecaster)
    soc_end = np.concatenate([[result.soc_initial_pct], result.soc_pct]) / 100.0
    charge, discharge = result.charge_kw, result.discharge_kw
    action = np.where(charge > 0, charge / storage.charge_limit_kw, 0.0)
    action -= np.where(discharge > 0, discharge / storage.discharge_limit_kw, 0.0)
    rows, socs, acts, hours = [], [], [], []
    for _, s, e in days:
        i, j = s - first, e - first
        rows.append(step_windows(series, s, e - s, forecast_steps + 1, (predict, lag_steps)))
        socs.append(soc_end[i:j])  # the SOC the step before it left
        acts.append(action[i:j])
        idx = series.index[s:e]
        hours.append(np.asarray(idx.hour + idx.minute / 60.0, dtype=np.float64))
    step_h = series.step_h
    meta = {
        "format": FORMAT,
        "teacher": f"LP + {forecaster}, re-planned every step, prices {lag_steps} steps late",
        "node": series.node,
        "unit": series.unit,
        "period": f"{days[0][0]} .. {days[-1][0]}",
        "forecaster": forecaster,
        "lag_steps": lag_steps,
        "forecast_steps": forecast_steps,
        "step_hours": step_h,
        "duration_h": storage.capacity_kwh / storage.discharge_limit_kw,
        "degradation_per_mwh": storage.degradation_per_mwh,
        "capture_vs_daily_perfect": round(result.capture_daily, 4),
    }
    return Demonstrations(
        np.concatenate(socs),
        np.concatenate(rows),
        np.concatenate(hours),
        np.clip(np.concatenate(acts), -1.0, 1.0),
        meta,
    )
