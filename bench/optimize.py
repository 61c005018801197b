"""Optimizer solve times: median wall time of one `optimize` call (model build, HiGHS, result
and explanations) for 24 h hourly, 24 h at 15 minutes, a week and a year, and a year of rolling
daily solves; on Crucero 2023 (LP path) and on DE 2018 with negative prices (MILP path)."""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

from bench import DATA
from bessai.market.prices import PriceSeries, load_prices, market_days
from bessai.optimize import StorageSpec, optimize


def _median_ms(
    series: PriceSeries, steps: int, repeats: int, *, around_min: bool = False
) -> dict[str, object]:
    prices = series.values[-steps:]
    if around_min:
        # A window around the most negative price, so the exact switch (MILP) is exercised.
        start = max(0, min(int(series.values.argmin()) - steps // 2, len(series) - steps))
        prices = series.values[start : start + steps]
    battery = StorageSpec()
    times = []
    solver = ""
    for _ in range(repeats):
        started = time.perf_counter()
        schedule = optimize(prices, series.step_h, battery, soc_initial_pct=50)
        times.append(time.perf_counter() - started)
        solver = schedule.solver
    return {
        "steps": steps,
        "step_min": series.step.total_seconds() / 60,
        "solver": solver,
        "repeats": repeats,
        "median_ms": round(statistics.median(times) * 1000, 2),
    }


def _rolling_year(series: PriceSeries) -> dict[str, object]:
    battery = StorageSpec()
    days = market_days(series)[-365:]
    prices = series.values
    soc = 50.0
    started = time.perf_counter()
    for _, s, e in days:
        schedule = optimize(prices[s:e], series.step_h, battery, soc_initial_pct=soc)
        soc = float(schedule.soc_pct[-1])
    total = time.perf_counter() - started
    return {
        "days": len(days),
        "total_s": round(total, 3),
        "per_day_ms": round(total / len(days) * 1000, 2),
    }


def _scenario_ms(series: PriceSeries, days: int, repeats: int) -> dict[str, object]:
    """The two-stage scenario LP of an hourly re-plan: the last ``days`` days' shapes as
    scenarios over 24 h, the first hour shared."""
    import numpy as np

    from bessai.optimize.scenario import ScenarioProblem, Scenarios, plan_scenarios

    values = series.values
    paths = np.stack([values[-24 * (k + 1) : len(values) - 24 * k] for k in range(days)])
    problem = ScenarioProblem(
        Scenarios(paths, np.full(days, 1.0 / days)), 1.0, StorageSpec(), 50.0, 50.0, 1
    )
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        plan_scenarios(problem)
        times.append(time.perf_counter() - started)
    return {
        "scenarios": days,
        "steps": 24,
        "repeats": repeats,
        "median_ms": round(statistics.median(times) * 1000, 2),
    }


def run() -> dict[str, object]:
    crucero = load_prices(DATA / "cen_cmg_crucero220_2019-2023.csv")
    crucero = crucero.between(crucero.end - timedelta(days=365), None)
    quarter = crucero.between(crucero.end - timedelta(days=7), None).resample(timedelta(minutes=15))
    germany = load_prices(DATA / "smard_day_ahead_prices_2018.csv")
    return {
        "battery": "1 MW / 4 MWh, eta 0.95 each way, SOC 0-100 %, final SOC = initial",
        "crucero_2023": [
            _median_ms(crucero, 24, 50),
            _median_ms(quarter, 96, 50),
            _median_ms(crucero, 168, 20),
            _median_ms(crucero, 8760, 5),
        ],
        "crucero_2023_rolling_daily": _rolling_year(crucero),
        "crucero_2023_scenario_lp": [_scenario_ms(crucero, 7, 50), _scenario_ms(crucero, 14, 20)],
        "germany_2018_negative_prices": [
            _median_ms(germany, 24, 20, around_min=True),
            _median_ms(germany, 168, 10, around_min=True),
            _median_ms(germany, 8760, 1),
        ],
        "germany_2018_rolling_daily": _rolling_year(germany),
    }
