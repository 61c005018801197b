"""The optimizer's answer: a schedule with its reasons and any violated constraint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from bessai.optimize.storage import FloatArray

Status = Literal["optimal", "feasible", "fallback-idle", "rule"]


@dataclass(frozen=True, slots=True)
class Violation:
    step: int
    kind: Literal["soc_below_min", "soc_above_max", "terminal_target", "cycle_cap", "grid_limit"]
    amount: float  # kWh for energy kinds, kW for the grid limit
    message: str


@dataclass(frozen=True, slots=True)
class Schedule:
    """An optimised plan. Arrays have one entry per step; ``soc_pct`` and ``energy_kwh`` are at
    the end of each step. ``revenue`` is gross arbitrage revenue at the decision prices
    (p50 with bands); ``degradation_cost`` is the wear in the same currency."""

    status: Status
    charge_kw: FloatArray
    discharge_kw: FloatArray
    energy_kwh: FloatArray
    soc_pct: FloatArray
    prices: FloatArray
    step_h: float
    revenue: float
    degradation_cost: float
    energy_value_per_mwh: FloatArray
    actions: tuple[str, ...]
    reasons: tuple[str, ...]
    violations: tuple[Violation, ...]
    solver: str
    solve_time_s: float
    mip_gap: float = 0.0
    conservative_revenue: float | None = None
    soc_initial_pct: float = 0.0
    messages: tuple[str, ...] = field(default=())

    @property
    def net_kw(self) -> FloatArray:
        """Battery power, > 0 = charging (the product's sign convention)."""
        return self.charge_kw - self.discharge_kw

    @property
    def net_revenue(self) -> float:
        return self.revenue - self.degradation_cost

    @property
    def throughput_kwh(self) -> float:
        return float(np.sum(self.charge_kw + self.discharge_kw) * self.step_h)

    def __len__(self) -> int:
        return len(self.charge_kw)
