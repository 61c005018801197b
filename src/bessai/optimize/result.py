"""From a HiGHS solution to a :class:`Schedule`: flows, stored energy and its value, revenue,
wear, violations and the reason for every step."""

from __future__ import annotations

import numpy as np

from bessai.optimize.explain import Duals, explain
from bessai.optimize.lp import Layout, tie_cost_per_mwh
from bessai.optimize.problem import Problem
from bessai.optimize.schedule import Schedule, Status, Violation
from bessai.optimize.storage import FloatArray, StorageSpec, cell_throughput_kwh

_ACT_TOL_KW = 1e-6
_DUAL_TOL = 1e-9


def initial_violations(storage: StorageSpec, soc0: float) -> list[Violation]:
    """The measured state itself can be outside the limits; the plan then recovers as fast as
    the penalties make it, and the starting breach is reported before anything else."""
    s = storage
    e0 = s.energy_kwh(soc0)
    out: list[Violation] = []
    if soc0 < s.soc_min_pct:
        out.append(
            Violation(
                0,
                "soc_below_min",
                s.e_min_kwh - e0,
                f"initial SOC {soc0:g} % is below the minimum {s.soc_min_pct:g} %",
            )
        )
    if soc0 > s.soc_max_pct:
        out.append(
            Violation(
                0,
                "soc_above_max",
                e0 - s.e_max_kwh,
                f"initial SOC {soc0:g} % is above the maximum {s.soc_max_pct:g} %",
            )
        )
    return out


def idle_schedule(pb: Problem, elapsed: float, message: str) -> Schedule:
    """The plan when the solver has no solution: idle, never an exception."""
    n, s, soc0 = pb.n, pb.storage, pb.soc_initial_pct
    zeros = np.zeros(n)
    return Schedule(
        status="fallback-idle",
        charge_kw=zeros,
        discharge_kw=zeros.copy(),
        energy_kwh=np.full(n, s.energy_kwh(soc0)),
        soc_pct=np.full(n, soc0),
        prices=pb.prices,
        step_h=pb.step_h,
        revenue=0.0,
        degradation_cost=0.0,
        energy_value_per_mwh=np.full(n, np.nan),
        actions=("idle",) * n,
        reasons=("idle: solver failed",) * n,
        violations=tuple(initial_violations(s, soc0)),
        solver="none",
        solve_time_s=elapsed,
        soc_initial_pct=soc0,
        messages=(*pb.messages, message),
    )


def _slack_violations(pb: Problem, x: FloatArray, lay: Layout) -> list[Violation]:
    """Every non-zero slack, in the order: SOC per step, terminal, cycle cap, grid."""
    s, n = pb.storage, pb.n
    tol = 1e-6 * s.capacity_kwh
    out: list[Violation] = []
    for t in range(n):
        lo = x[lay.slack_soc_lo + t]
        hi = x[lay.slack_soc_hi + t]
        if lo > tol:
            pct = lo / s.capacity_kwh * 100
            out.append(Violation(t, "soc_below_min", lo, f"SOC {pct:.2f} % below the minimum"))
        if hi > tol:
            pct = hi / s.capacity_kwh * 100
            out.append(Violation(t, "soc_above_max", hi, f"SOC {pct:.2f} % above the maximum"))
    fin = x[lay.slack_final]
    if fin > tol:
        short = fin / s.capacity_kwh * 100
        message = f"final SOC {short:.2f} % short of the {pb.soc_final_pct:g} % target"
        out.append(Violation(n - 1, "terminal_target", fin, message))
    if lay.cycle_slack is not None:
        for i, (lo_t, _) in enumerate(lay.cycle_blocks):
            over = x[lay.cycle_slack + i]
            if over > tol:
                message = f"cycle cap exceeded by {over:.1f} kWh"
                out.append(Violation(lo_t, "cycle_cap", over, message))
    if lay.grid_hi is not None and lay.grid_lo is not None:
        for t in range(n):
            over = x[lay.grid_hi + t] + x[lay.grid_lo + t]
            if over > 1e-6:
                message = f"grid limit exceeded by {over:.1f} kW"
                out.append(Violation(t, "grid_limit", over, message))
    return out


def _binding(pb: Problem, x: FloatArray, duals: FloatArray, lay: Layout) -> Duals:
    """Which of the day's cycle caps, the terminal target and the grid rows bind."""
    capped: set[int] = set()
    for i, (lo_t, hi_t) in enumerate(lay.cycle_blocks):
        if abs(duals[lay.cycle_rows[i]]) > _DUAL_TOL:
            capped.update(range(lo_t, hi_t))
    met = x[lay.slack_final] <= 1e-6 * pb.storage.capacity_kwh
    terminal = bool(abs(duals[lay.terminal_row]) > _DUAL_TOL and met)
    grid: set[int] = set()
    if lay.grid_rows is not None:
        grid = {t for t in range(pb.n) if abs(duals[lay.grid_rows + t]) > _DUAL_TOL}
    # HiGHS reports d(objective)/d(rhs); one more kWh arriving in storage lowers the cost.
    value = -duals[lay.balance_rows : lay.balance_rows + pb.n] * 1000.0
    return Duals(value, capped, terminal, grid, tie_cost_per_mwh(pb))


def schedule_of(
    pb: Problem,
    x: FloatArray,
    duals: FloatArray,
    lay: Layout,
    *,
    status: Status,
    solver: str,
    mip_gap: float,
    elapsed: float,
) -> Schedule:
    """The schedule a solution ``x`` (with row ``duals``) of the model laid out as ``lay``
    describes."""
    n, s, dt, p = pb.n, pb.storage, pb.step_h, pb.prices
    c = np.clip(x[lay.c : lay.c + n], 0.0, None)
    d = np.clip(x[lay.d : lay.d + n], 0.0, None)
    c[c < _ACT_TOL_KW] = 0.0
    d[d < _ACT_TOL_KW] = 0.0
    e = x[lay.e : lay.e + n]
    conservative = None
    if pb.bands is not None:
        p10 = np.asarray(pb.bands.p10, dtype=np.float64)
        p90 = np.asarray(pb.bands.p90, dtype=np.float64)
        conservative = float(np.sum(p10 * d - p90 * c) * dt / 1000.0)
    violations = initial_violations(s, pb.soc_initial_pct) + _slack_violations(pb, x, lay)
    binding = _binding(pb, x, duals, lay)
    actions, reasons = explain(pb, c, d, e, binding, violations)
    return Schedule(
        status=status,
        charge_kw=c,
        discharge_kw=d,
        energy_kwh=e,
        soc_pct=e / s.capacity_kwh * 100.0,
        prices=p,
        step_h=dt,
        revenue=float(np.sum(p * (d - c)) * dt / 1000.0),
        degradation_cost=s.degradation_per_mwh * cell_throughput_kwh(c, d, dt, s) / 1000.0,
        energy_value_per_mwh=binding.value_per_mwh,
        actions=tuple(actions),
        reasons=tuple(reasons),
        violations=tuple(violations),
        solver=solver,
        solve_time_s=elapsed,
        mip_gap=mip_gap,
        conservative_revenue=conservative,
        soc_initial_pct=pb.soc_initial_pct,
        messages=pb.messages,
    )
