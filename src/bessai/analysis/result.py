"""What a back-test found: per day and in total, with the executed schedule for plotting."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from bessai.market.days import Excluded
from bessai.optimize.storage import FloatArray, StorageSpec
from bessai.plant.degradation import count_cycles


@dataclass(frozen=True, slots=True)
class DayResult:
    day: date
    revenue: float
    degradation_cost: float
    perfect_net: float
    soc_end_pct: float

    @property
    def net_revenue(self) -> float:
        return self.revenue - self.degradation_cost


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """A back-test's totals and the executed schedule (for plotting)."""

    forecaster: str
    node: str
    unit: str
    timezone: str
    first_day: date
    last_day: date
    storage: StorageSpec
    revenue: float
    degradation_cost: float
    perfect_daily_net: float
    whole_period_net: float
    cell_throughput_kwh: float
    index: pd.DatetimeIndex
    prices: FloatArray
    forecast: FloatArray
    charge_kw: FloatArray
    discharge_kw: FloatArray
    soc_pct: FloatArray
    days: tuple[DayResult, ...]
    soc_initial_pct: float
    settlement: str
    excluded: tuple[Excluded, ...] = ()  # days of the period left out (gaps in the prices)

    @property
    def net_revenue(self) -> float:
        return self.revenue - self.degradation_cost

    @property
    def capture_daily(self) -> float:
        """Net revenue over the daily perfect-foresight net revenue."""
        return _ratio(self.net_revenue, self.perfect_daily_net)

    @property
    def capture_period(self) -> float:
        """Net revenue over the whole-period optimum."""
        return _ratio(self.net_revenue, self.whole_period_net)

    @property
    def equivalent_full_cycles(self) -> float:
        """Rainflow (ASTM E1049-85) over the settled SOC: the sum of depth x count, a full
        0-100-0 % cycle counting one."""
        series = np.concatenate([[self.soc_initial_pct], self.soc_pct])
        return sum(rng * cnt for rng, cnt in count_cycles(series)) / 100.0

    def summary(self) -> dict[str, object]:
        return {
            "forecaster": self.forecaster,
            "node": self.node,
            "from": self.first_day.isoformat(),
            "to": self.last_day.isoformat(),
            "days": len(self.days),
            "currency": self.unit.split("/")[0],
            "revenue": round(self.revenue, 2),
            "degradation_cost": round(self.degradation_cost, 2),
            "net_revenue": round(self.net_revenue, 2),
            "perfect_daily_net": round(self.perfect_daily_net, 2),
            "whole_period_net": round(self.whole_period_net, 2),
            "capture_vs_daily_perfect": round(self.capture_daily, 4),
            "capture_vs_whole_period": round(self.capture_period, 4),
            "equivalent_full_cycles": round(self.equivalent_full_cycles, 2),
            "settlement": self.settlement,
            "excluded_days": [x.to_json() for x in self.excluded],
        }


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.nan


def summarise(results: list[BacktestResult]) -> list[dict[str, object]]:
    """One table row per back-test: capture, revenue, cycles and wear."""
    return [r.summary() for r in results]
