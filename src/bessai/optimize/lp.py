"""Building the arbitrage LP (and its MILP switches) in column form; see docs/optimizer.md.

Per step t the columns are charge ``c_t`` and discharge ``d_t`` (kW at the AC terminals) and
stored energy ``e_t`` (kWh at the end of the step), plus slacks on every constraint a measured
state can break, priced far above any possible gain so the model is always feasible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bessai.optimize.problem import BoolArray, Problem
from bessai.optimize.storage import FloatArray

# Relative weight of the tie-breaking throughput cost (of the largest |price|): small enough to
# move revenue by well under 1e-4 of the traded value (3e-7 on a year of Crucero), large enough
# to make cycling at zero spread strictly worse and to pick the same vertex among equal prices
# whatever the solver path (1e-5 was below HiGHS's tolerances: presolve on/off chose
# different plans on persistence forecasts full of equal zero prices).
TIE_BREAK = 1e-4


@dataclass(slots=True)
class ColumnModel:
    """A model in column form, built with named column blocks."""

    n_cols: int = 0
    cost: list[float] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    row_lower: list[float] = field(default_factory=list)
    row_upper: list[float] = field(default_factory=list)
    entries: list[tuple[int, int, float]] = field(default_factory=list)  # row, col, value
    integer_cols: list[int] = field(default_factory=list)

    def cols(self, n: int, cost: float | Sequence[float], lo: float, hi: float) -> int:
        first = self.n_cols
        costs = [float(cost)] * n if isinstance(cost, float | int) else [float(c) for c in cost]
        self.cost.extend(costs)
        self.lower.extend([lo] * n)
        self.upper.extend([hi] * n)
        self.n_cols += n
        return first

    def row(self, lo: float, hi: float, terms: Sequence[tuple[int, float]]) -> int:
        r = len(self.row_lower)
        self.row_lower.append(lo)
        self.row_upper.append(hi)
        self.entries.extend((r, c, v) for c, v in terms)
        return r

    @property
    def n_rows(self) -> int:
        return len(self.row_lower)


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each block of columns and rows starts (None: the block is absent)."""

    c: int
    d: int
    e: int
    slack_soc_lo: int
    slack_soc_hi: int
    slack_final: int
    grid_lo: int | None
    grid_hi: int | None
    cycle_slack: int | None
    u_cols: tuple[int, ...]
    balance_rows: int
    terminal_row: int
    cycle_rows: tuple[int, ...]
    cycle_blocks: tuple[tuple[int, int], ...]
    grid_rows: int | None


def price_scale(pb: Problem) -> float:
    """The largest decision price in magnitude (at least 1): the unit of the tie-break cost and
    of the slack penalty."""
    return float(max(np.max(np.abs(pb.price_charge)), np.max(np.abs(pb.price_discharge)), 1))


def tie_cost_per_mwh(pb: Problem) -> FloatArray:
    """The tie-breaking cost per MWh traded at each step: rising slowly with time, so equal
    prices favour earlier steps. A trade must earn it too, so it widens the no-trade band."""
    return TIE_BREAK * price_scale(pb) * (1.0 + np.arange(pb.n) / pb.n)


@dataclass(frozen=True, slots=True)
class _Costs:
    """Objective coefficients per step and the power limits left to each step."""

    big: float  # penalty per kWh of slack
    charge: FloatArray
    discharge: FloatArray
    charge_limit_kw: FloatArray
    discharge_limit_kw: FloatArray

    @classmethod
    def of(cls, pb: Problem) -> _Costs:
        s, dt = pb.storage, pb.step_h
        scale = price_scale(pb)
        # Penalty per kWh of slack: far above the most any kWh can earn in one step (buy at the
        # lowest, sell at the highest price through both losses, plus wear and hurdle).
        big = 100.0 * (2 * scale + s.degradation_per_mwh + pb.risk.min_spread + 1.0) / 1000.0
        big /= s.eta_charge * s.eta_discharge
        wear_c = s.degradation_per_mwh / 1000.0 * s.eta_charge * dt
        wear_d = s.degradation_per_mwh / 1000.0 * dt / s.eta_discharge
        hurdle = pb.risk.min_spread / 2.0 / 1000.0 * dt
        # The tie-break cost per step (tie_cost_per_mwh in the objective's units, kept in this
        # order of operations so plans stay bit-identical).
        tie = TIE_BREAK * scale / 1000.0 * dt * (1.0 + np.arange(pb.n) / pb.n)
        return cls(
            big=big,
            charge=pb.price_charge / 1000.0 * dt + wear_c + hurdle + tie,
            discharge=-pb.price_discharge / 1000.0 * dt + wear_d + hurdle + tie,
            charge_limit_kw=np.where(pb.held, 0.0, s.charge_limit_kw),
            discharge_limit_kw=np.where(pb.held, 0.0, s.discharge_limit_kw),
        )


def build_lp(
    pb: Problem, switched: BoolArray | None = None, fixed_u: FloatArray | None = None
) -> tuple[ColumnModel, Layout]:
    """The model for ``pb``; with ``switched``, a binary switch on those steps (integer
    columns, or fixed at ``fixed_u`` to read the stored-energy values off the LP)."""
    n, s, dt = pb.n, pb.storage, pb.step_h
    lp = ColumnModel()
    costs = _Costs.of(pb)
    e0 = s.energy_kwh(pb.soc_initial_pct)
    c = lp.cols(n, list(costs.charge), 0.0, 0.0)
    d = lp.cols(n, list(costs.discharge), 0.0, 0.0)
    lp.upper[c : c + n] = [float(x) for x in costs.charge_limit_kw]
    lp.upper[d : d + n] = [float(x) for x in costs.discharge_limit_kw]
    e = lp.cols(n, 0.0, min(0.0, e0), max(s.capacity_kwh, e0))
    s_lo = lp.cols(n, costs.big, 0.0, math.inf)
    s_hi = lp.cols(n, costs.big, 0.0, math.inf)
    s_fin = lp.cols(1, costs.big, 0.0, math.inf)

    first_balance = lp.n_rows
    for t in range(n):
        terms = [(e + t, 1.0), (c + t, -s.eta_charge * dt), (d + t, dt / s.eta_discharge)]
        if t > 0:
            terms.append((e + t - 1, -1.0))
        rhs = e0 if t == 0 else 0.0
        lp.row(rhs, rhs, terms)
    for t in range(n):
        lp.row(s.e_min_kwh, s.e_max_kwh, [(e + t, 1.0), (s_lo + t, 1.0), (s_hi + t, -1.0)])
    e_final = s.energy_kwh(pb.soc_final_pct)
    terminal_row = lp.row(e_final, math.inf, [(e + n - 1, 1.0), (s_fin, 1.0)])
    cyc, cycle_rows, blocks = _cycle_cap(lp, pb, c, d, costs.big)
    g_lo, g_hi, grid_first = _grid_limits(lp, pb, c, d, costs.big)
    u_cols = _switches(lp, c, d, costs, switched, fixed_u)
    layout = Layout(
        c=c,
        d=d,
        e=e,
        slack_soc_lo=s_lo,
        slack_soc_hi=s_hi,
        slack_final=s_fin,
        grid_lo=g_lo,
        grid_hi=g_hi,
        cycle_slack=cyc,
        u_cols=u_cols,
        balance_rows=first_balance,
        terminal_row=terminal_row,
        cycle_rows=cycle_rows,
        cycle_blocks=blocks,
        grid_rows=grid_first,
    )
    return lp, layout


def _cycle_cap(
    lp: ColumnModel, pb: Problem, c: int, d: int, big: float
) -> tuple[int | None, tuple[int, ...], tuple[tuple[int, int], ...]]:
    """A cap on full cycles per block of 24 h from the horizon start (prorated at the end)."""
    s, dt, n = pb.storage, pb.step_h, pb.n
    if s.cycles_per_day is None:
        return None, (), ()
    per_day = max(1, round(24.0 / dt))
    blocks = [(k, min(k + per_day, n)) for k in range(0, n, per_day)]
    cyc = lp.cols(len(blocks), big, 0.0, math.inf)
    rows: list[int] = []
    for i, (lo, hi) in enumerate(blocks):
        # Full cycles counted on cell throughput: one cycle = capacity in and out.
        cap = 2.0 * s.cycles_per_day * s.capacity_kwh * (hi - lo) * dt / 24.0
        terms = [(c + t, s.eta_charge * dt) for t in range(lo, hi)]
        terms += [(d + t, dt / s.eta_discharge) for t in range(lo, hi)]
        terms.append((cyc + i, -1.0))
        rows.append(lp.row(-math.inf, cap, terms))
    return cyc, tuple(rows), tuple(blocks)


def _grid_limits(
    lp: ColumnModel, pb: Problem, c: int, d: int, big: float
) -> tuple[int | None, int | None, int | None]:
    """Net grid flow within the connection's import and export limits, with slack."""
    grid, n = pb.grid, pb.n
    if grid is None or not grid.limited:
        return None, None, None
    base = grid.base_kw(n)
    imp = math.inf if grid.import_limit_kw is None else grid.import_limit_kw
    exp = math.inf if grid.export_limit_kw is None else grid.export_limit_kw
    g_hi = lp.cols(n, big * pb.step_h, 0.0, math.inf)
    g_lo = lp.cols(n, big * pb.step_h, 0.0, math.inf)
    first = lp.n_rows
    for t in range(n):
        lp.row(
            -exp - base[t],
            imp - base[t],
            [(c + t, 1.0), (d + t, -1.0), (g_hi + t, -1.0), (g_lo + t, 1.0)],
        )
    return g_lo, g_hi, first


def _switches(
    lp: ColumnModel,
    c: int,
    d: int,
    costs: _Costs,
    switched: BoolArray | None,
    fixed_u: FloatArray | None,
) -> tuple[int, ...]:
    """A binary switch u_t on each switched step: ``c_t <= P_c u_t``, ``d_t <= P_d (1 - u_t)``."""
    if switched is None or not switched.any():
        return ()
    steps = [int(t) for t in np.flatnonzero(switched)]
    u = lp.cols(len(steps), 0.0, 0.0, 1.0)
    cols: list[int] = []
    for i, t in enumerate(steps):
        col = u + i
        cols.append(col)
        if fixed_u is not None:
            lp.lower[col] = lp.upper[col] = float(fixed_u[i])
        else:
            lp.integer_cols.append(col)
        pc, pd = float(costs.charge_limit_kw[t]), float(costs.discharge_limit_kw[t])
        lp.row(-math.inf, 0.0, [(c + t, 1.0), (col, -pc)])
        lp.row(-math.inf, pd, [(d + t, 1.0), (col, pd)])
    return tuple(cols)
