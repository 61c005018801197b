"""Solving the arbitrage model on HiGHS, exactly and never infeasible.

The LP is solved first; when its optimum has no step that charges and discharges at once it is
optimal for the mixed-integer problem too (the LP is a relaxation). Otherwise a binary switch
per offending step is added and the MILP solved, repeating while an unswitched step still trades
both ways. Stored-energy values come from the LP with the switches fixed at their optimum.

HiGHS is silenced by its own options, set on each instance before anything else: the solver
class of ``highspy`` is used without the Python wrapper's callback set-up, whose first call
prints the banner on the process's stdout before an option could be set (highspy 1.16).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import highspy
import numpy as np
from highspy._core import _Highs

from bessai.market.bands import Bands
from bessai.optimize.lp import ColumnModel, Layout, build_lp
from bessai.optimize.problem import BoolArray, CarbonPrice, Problem, Risk
from bessai.optimize.result import idle_schedule, schedule_of
from bessai.optimize.schedule import Schedule, Status
from bessai.optimize.storage import FloatArray, GridConnection, StorageSpec

_ACT_TOL_KW = 1e-6
#: After this many rounds of switching only the offending steps, switch every step.
_SWITCH_ROUNDS = 4


def silent_highs() -> _Highs:
    """A HiGHS instance that prints nothing: logging is off before its first call."""
    h = _Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("log_to_console", False)
    return h


def _to_highs(lp: ColumnModel, pb: Problem) -> _Highs:
    model = highspy.HighsLp()
    model.num_col_ = lp.n_cols
    model.num_row_ = lp.n_rows
    model.col_cost_ = np.array(lp.cost)
    model.col_lower_ = np.array(lp.lower)
    model.col_upper_ = np.array(lp.upper)
    model.row_lower_ = np.array(lp.row_lower)
    model.row_upper_ = np.array(lp.row_upper)
    ent = sorted(lp.entries, key=lambda e: (e[1], e[0]))
    starts = np.zeros(lp.n_cols + 1, dtype=np.int32)
    for _, c, _ in ent:
        starts[c + 1] += 1
    model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    model.a_matrix_.start_ = np.cumsum(starts).astype(np.int32)
    model.a_matrix_.index_ = np.array([r for r, _, _ in ent], dtype=np.int32)
    model.a_matrix_.value_ = np.array([v for _, _, v in ent], dtype=np.float64)
    if lp.integer_cols:
        integrality = [highspy.HighsVarType.kContinuous] * lp.n_cols
        for c in lp.integer_cols:
            integrality[c] = highspy.HighsVarType.kInteger
        model.integrality_ = integrality
    h = silent_highs()
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", 0)
    if not lp.integer_cols:
        # These LPs are small and already tight; presolve costs more than it saves
        # (measured: about half the solve time at 24 steps, a quarter at 8,760).
        h.setOptionValue("presolve", "off")
    h.setOptionValue("time_limit", float(pb.time_limit_s))
    h.passModel(model)
    return h


@dataclass(frozen=True, slots=True)
class Solved:
    """One HiGHS run: its status (None: no usable solution), values and layout."""

    highs: _Highs
    layout: Layout
    status: Status | None

    @property
    def x(self) -> FloatArray:
        return np.asarray(self.highs.getSolution().col_value, dtype=np.float64)

    @property
    def duals(self) -> FloatArray:
        return np.asarray(self.highs.getSolution().row_dual, dtype=np.float64)

    def simultaneous(self, n: int) -> BoolArray:
        x, lay = self.x, self.layout
        return np.minimum(x[lay.c : lay.c + n], x[lay.d : lay.d + n]) > _ACT_TOL_KW


def _run(pb: Problem, switched: BoolArray | None, fixed_u: FloatArray | None) -> Solved:
    lp, layout = build_lp(pb, switched, fixed_u)
    h = _to_highs(lp, pb)
    h.run()
    return Solved(h, layout, _status(h))


def _status(h: _Highs) -> Status | None:
    ms = h.getModelStatus()
    if ms == highspy.HighsModelStatus.kOptimal:
        return "optimal"
    has_solution = (
        h.getInfo().primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible
    )
    if ms in (highspy.HighsModelStatus.kTimeLimit, highspy.HighsModelStatus.kIterationLimit):
        return "feasible" if has_solution else None
    return None


def solve(pb: Problem) -> Schedule:
    """The optimal schedule of ``pb`` (an idle plan with a message if HiGHS finds none)."""
    started = time.perf_counter()
    run = _run(pb, None, None)
    solver, mip_gap = "lp", 0.0
    switched = np.zeros(pb.n, dtype=bool)
    rounds = 0
    # The LP optimum may trade both ways in a step (burning losses pays at negative prices).
    # Add the binary switch only where it did and re-solve; a solution with no simultaneous
    # step is optimal for the full MILP because every such model relaxes it.
    while run.status is not None and (simultaneous := run.simultaneous(pb.n)).any():
        rounds += 1
        if rounds == 1:
            # Burning energy can only pay where a price is negative: switch all those at once.
            simultaneous |= (pb.price_charge < 0) | (pb.price_discharge < 0)
        switched = np.ones(pb.n, dtype=bool) if rounds > _SWITCH_ROUNDS else switched | simultaneous
        mip = _run(pb, switched, None)
        if mip.status is None:
            run = mip
            break
        u = np.round(mip.x[list(mip.layout.u_cols)])
        if mip.status == "feasible":
            mip_gap = float(mip.highs.getInfo().mip_gap)
        # Stored-energy values come from the LP with the switches fixed at the optimum.
        fixed = _run(pb, switched, u)
        status: Status | None = None
        if fixed.status is not None:
            either = "feasible" in (mip.status, run.status)
            status = "feasible" if either else "optimal"
        run = Solved(fixed.highs, fixed.layout, status)
        solver = "milp"
    elapsed = time.perf_counter() - started
    if run.status is None:
        h = run.highs
        reason = h.modelStatusToString(h.getModelStatus())
        return idle_schedule(pb, elapsed, f"solver failed ({reason}); idle plan")
    return schedule_of(
        pb,
        run.x,
        run.duals,
        run.layout,
        status=run.status,
        solver=solver,
        mip_gap=mip_gap,
        elapsed=elapsed,
    )


def optimize(
    prices: Sequence[float] | FloatArray,
    step_h: float,
    storage: StorageSpec,
    *,
    soc_initial_pct: float,
    soc_final_pct: float | None = None,
    grid: GridConnection | None = None,
    bands: Bands | None = None,
    risk: Risk | None = None,
    time_limit_s: float = 30.0,
    carbon: CarbonPrice | None = None,
) -> Schedule:
    """Optimise a storage schedule over the horizon of ``prices`` (per MWh, one per step).

    ``soc_final_pct`` is the minimum SOC at the end of the horizon (default: the initial SOC).
    With a forecast, ``prices`` is its point forecast (p50) and ``bands`` its quantiles: they
    drive the confidence filter, the conservative decision prices (p90 to charge, p10 to
    discharge when ``risk.conservative``) and the conservative revenue estimate. ``carbon``
    adds a CO2 price times each step's emission factor to the decision prices.
    """
    problem = Problem.create(
        prices,
        step_h,
        storage,
        soc_initial_pct=soc_initial_pct,
        soc_final_pct=soc_final_pct,
        grid=grid,
        bands=bands,
        risk=risk,
        time_limit_s=time_limit_s,
        carbon=carbon,
    )
    return solve(problem)
