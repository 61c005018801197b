"""The two-stage scenario LP: plan on price scenarios instead of one point forecast.

Revenue is linear in price, so a plan fixed for the whole horizon earns on average exactly what
it earns at the scenarios' mean price: a one-stage scenario LP *is* the point plan on the mean
(``tests/test_optimize_scenario.py`` checks it). What a scenario plan adds is recourse. The
gateway re-plans every ``replan_s``; only the first ``commit_steps`` of a plan are ever
executed before the next plan sees newer prices. The model therefore shares those steps across
the scenarios (non-anticipativity) and lets every later step follow its own scenario. The first
decision is then the one that is best on average *given that the later ones will adapt*: with a
price spike that may come at 19 h or at 21 h, the mean forecast smears it over both hours and
may not pay for charging, while every scenario has one hour worth charging for.

Per scenario k and step t: charge ``c_kt``, discharge ``d_kt`` (kW, AC), stored energy
``e_kt`` (kWh, end of step), slacks on the SOC bounds and the terminal target as in
:mod:`.lp` (a measured SOC may start outside the bounds). Steps ``t < commit_steps`` use one
pair of columns for all scenarios. Objective: the probability-weighted cost, plus the same
wear, tie-break and slack penalties as the point LP. Exact (HiGHS simplex), no sampling inside.
Prices are assumed non-negative in the shared steps: no binary switch here (the CMg is
floored at zero); a negative price falls back to the point LP's MILP (:func:`plan_scenarios`
callers check :func:`needs_switches`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bessai.errors import ConfigError
from bessai.optimize.lp import TIE_BREAK
from bessai.optimize.schedule import Schedule
from bessai.optimize.storage import FloatArray, StorageSpec, cell_throughput_kwh

_ACT_TOL_KW = 1e-6


@dataclass(frozen=True, slots=True)
class Scenarios:
    """``prices`` (k, n): one price path per scenario; ``weights`` (k,) their probabilities."""

    prices: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        p = np.asarray(self.prices, dtype=np.float64)
        w = np.asarray(self.weights, dtype=np.float64)
        if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] == 0:
            raise ConfigError("scenarios: prices must be a non-empty (scenarios, steps) array")
        if w.shape != (p.shape[0],) or np.any(w < 0) or not math.isclose(w.sum(), 1.0):
            raise ConfigError("scenarios: one weight >= 0 per scenario, summing to 1")
        if not np.all(np.isfinite(p)):
            raise ConfigError("scenarios: prices contain NaN or infinite values")

    @property
    def mean(self) -> FloatArray:
        return np.asarray(self.weights @ self.prices, dtype=np.float64)

    def head(self, n: int) -> Scenarios:
        """The first ``n`` steps of every scenario."""
        return Scenarios(self.prices[:, :n], self.weights)


@dataclass(frozen=True, slots=True)
class ScenarioProblem:
    """One scenario plan: the scenarios, the step, the storage, the SOC now and the minimum at
    the end, and how many first steps are decided for every scenario at once."""

    scenarios: Scenarios
    step_h: float
    storage: StorageSpec
    soc_initial_pct: float
    soc_final_pct: float
    commit_steps: int = 1
    time_limit_s: float = 30.0


def needs_switches(scenarios: Scenarios) -> bool:
    """A negative price can make charging and discharging at once pay (burning losses): the
    scenario LP has no switch for that, the point optimizer's MILP has."""
    return bool(np.any(scenarios.prices < 0))


@dataclass(frozen=True, slots=True)
class ScenarioLp:
    """The two-stage model in arrays: costs and bounds per column, bounds per row, the matrix
    as (row, column, value) triples, and where the flows of scenario k at step t are."""

    cost: FloatArray
    col_lower: FloatArray
    col_upper: FloatArray
    row_lower: FloatArray
    row_upper: FloatArray
    rows: npt.NDArray[np.int64]
    cols: npt.NDArray[np.int64]
    vals: FloatArray
    c_col: npt.NDArray[np.int64]  # (k, n)
    d_col: npt.NDArray[np.int64]


def _flow_index(k_n: int, n: int, commit: int) -> tuple[npt.NDArray[np.int64], ...]:
    """Column of charge and of discharge for (scenario, step): shared before ``commit``."""
    t = np.arange(n)[None, :]
    k = np.arange(k_n)[:, None]
    later = n - commit
    c_col = np.where(t < commit, t, 2 * commit + k * later + (t - commit))
    d_col = np.where(t < commit, commit + t, 2 * commit + k_n * later + k * later + (t - commit))
    return c_col.astype(np.int64), d_col.astype(np.int64)


def _unit_costs(pb: ScenarioProblem) -> tuple[float, float, float, FloatArray]:
    """The slack penalty (USD/kWh), the wear of a charged and a discharged kW over one step, and
    the tie-break ramp per step, in the model's units."""
    sc, s, dt = pb.scenarios, pb.storage, pb.step_h
    n = sc.prices.shape[1]
    scale = float(max(np.max(np.abs(sc.prices)), 1.0))
    big = 100.0 * (2 * scale + s.degradation_per_mwh + 1.0) / 1000.0
    big /= s.eta_charge * s.eta_discharge
    wear_c = s.degradation_per_mwh / 1000.0 * s.eta_charge * dt
    wear_d = s.degradation_per_mwh / 1000.0 * dt / s.eta_discharge
    tie = TIE_BREAK * scale / 1000.0 * dt * (1.0 + np.arange(n) / n)
    return big, wear_c, wear_d, tie


def build_scenario_lp(pb: ScenarioProblem) -> ScenarioLp:
    """The two-stage model of ``pb``, vectorised (one re-plan per step of a year of back-test
    builds 8,760 of them)."""
    sc, s, dt = pb.scenarios, pb.storage, pb.step_h
    k_n, n = sc.prices.shape
    commit = min(max(pb.commit_steps, 0), n)
    w = sc.weights
    big, wear_c, wear_d, tie = _unit_costs(pb)
    c_col, d_col = _flow_index(k_n, n, commit)
    n_flow = 2 * commit + 2 * k_n * (n - commit)
    e_col = n_flow + np.arange(k_n * n).reshape(k_n, n)
    lo_col = e_col + k_n * n
    hi_col = lo_col + k_n * n
    fin_col = n_flow + 3 * k_n * n + np.arange(k_n)
    n_cols = n_flow + 3 * k_n * n + k_n
    cost = np.zeros(n_cols)
    weighted_c = w[:, None] * (sc.prices / 1000.0 * dt + wear_c + tie[None, :])
    weighted_d = w[:, None] * (-sc.prices / 1000.0 * dt + wear_d + tie[None, :])
    # Shared columns sum their scenarios' weighted costs (the mean price); np.add.at does.
    np.add.at(cost, c_col.ravel(), weighted_c.ravel())
    np.add.at(cost, d_col.ravel(), weighted_d.ravel())
    cost[lo_col] = w[:, None] * big
    cost[hi_col] = w[:, None] * big
    cost[fin_col] = w * big
    upper = np.full(n_cols, np.inf)
    upper[c_col] = s.charge_limit_kw
    upper[d_col] = s.discharge_limit_kw
    lower = np.zeros(n_cols)
    lower[e_col] = -np.inf
    e0 = s.energy_kwh(pb.soc_initial_pct)
    e_final = s.energy_kwh(min(max(pb.soc_final_pct, s.soc_min_pct), s.soc_max_pct))
    bal = np.arange(k_n * n).reshape(k_n, n)  # balance rows
    bnd = bal + k_n * n  # SOC bound rows
    term = 2 * k_n * n + np.arange(k_n)
    prev_r, prev_c = bal[:, 1:].ravel(), e_col[:, :-1].ravel()
    m = k_n * n
    rhs = np.zeros((k_n, n))
    rhs[:, 0] = e0
    if s.e_min_kwh <= e0 <= s.e_max_kwh:
        # A start inside the bounds: the SOC bounds are column bounds (half the rows), and
        # the slack columns stay at zero.
        lower[e_col], upper[e_col] = s.e_min_kwh, s.e_max_kwh
        upper[lo_col] = upper[hi_col] = 0.0
        term = k_n * n + np.arange(k_n)
        rows = np.concatenate([bal.ravel()] * 3 + [prev_r, term, term])
        cols = np.concatenate(
            [e_col.ravel(), c_col.ravel(), d_col.ravel(), prev_c, e_col[:, -1], fin_col]
        )
        vals = np.concatenate(
            [
                np.ones(m),
                np.full(m, -s.eta_charge * dt),
                np.full(m, dt / s.eta_discharge),
                -np.ones(len(prev_r)),
                np.ones(2 * k_n),
            ]
        )
        row_lower = np.concatenate([rhs.ravel(), np.full(k_n, e_final)])
        row_upper = np.concatenate([rhs.ravel(), np.full(k_n, np.inf)])
        return ScenarioLp(cost, lower, upper, row_lower, row_upper, rows, cols, vals, c_col, d_col)
    rows = np.concatenate([bal.ravel()] * 3 + [prev_r] + [bnd.ravel()] * 3 + [term, term])
    flat_e = e_col.ravel()
    blocks = [flat_e, c_col.ravel(), d_col.ravel(), prev_c, flat_e, lo_col.ravel()]
    blocks.extend([hi_col.ravel(), e_col[:, -1], fin_col])
    cols = np.concatenate(blocks)
    vals = np.concatenate(
        [
            np.ones(m),
            np.full(m, -s.eta_charge * dt),
            np.full(m, dt / s.eta_discharge),
            -np.ones(len(prev_r)),
            np.ones(m),
            np.ones(m),
            -np.ones(m),
            np.ones(k_n),
            np.ones(k_n),
        ]
    )
    row_lower = np.concatenate([rhs.ravel(), np.full(m, s.e_min_kwh), np.full(k_n, e_final)])
    row_upper = np.concatenate([rhs.ravel(), np.full(m, s.e_max_kwh), np.full(k_n, np.inf)])
    return ScenarioLp(cost, lower, upper, row_lower, row_upper, rows, cols, vals, c_col, d_col)


def _solve(lp: ScenarioLp, time_limit_s: float) -> FloatArray | None:
    import highspy

    from bessai.optimize.solve import silent_highs

    n_cols, n_rows = len(lp.cost), len(lp.row_lower)
    model = highspy.HighsLp()
    model.num_col_ = n_cols
    model.num_row_ = n_rows
    model.col_cost_ = lp.cost
    model.col_lower_ = lp.col_lower
    model.col_upper_ = lp.col_upper
    model.row_lower_ = lp.row_lower
    model.row_upper_ = lp.row_upper
    order = np.lexsort((lp.rows, lp.cols))
    starts = np.zeros(n_cols + 1, dtype=np.int64)
    np.add.at(starts, lp.cols + 1, 1)
    model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    model.a_matrix_.start_ = np.cumsum(starts).astype(np.int32)
    model.a_matrix_.index_ = lp.rows[order].astype(np.int32)
    model.a_matrix_.value_ = lp.vals[order]
    h = silent_highs()
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("time_limit", float(time_limit_s))
    h.passModel(model)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return np.asarray(h.getSolution().col_value, dtype=np.float64)


def _expected_flows(x: FloatArray, lp: ScenarioLp, weights: FloatArray) -> tuple[FloatArray, ...]:
    """Probability-weighted charge and discharge per step, netted: a step where some scenarios
    charge and others discharge becomes one net flow (the shared steps are never mixed)."""
    c, d = x[lp.c_col], x[lp.d_col]
    net = weights @ (np.clip(c, 0, None) - np.clip(d, 0, None))
    charge = np.where(net > _ACT_TOL_KW, net, 0.0)
    discharge = np.where(net < -_ACT_TOL_KW, -net, 0.0)
    return charge, discharge


def plan_scenarios(pb: ScenarioProblem) -> Schedule | None:
    """The scenario plan as a :class:`Schedule`: the committed steps exactly as decided, the
    later ones the scenarios' expected (netted) flows, a feasible path through the same
    constraints, re-simulated on the storage model. ``prices`` and ``revenue`` are at the
    scenarios' mean. None when HiGHS finds no optimum (the caller plans on the point)."""
    started = time.perf_counter()
    lp = build_scenario_lp(pb)
    x = _solve(lp, pb.time_limit_s)
    if x is None:
        return None
    s, dt = pb.storage, pb.step_h
    charge, discharge = _expected_flows(x, lp, pb.scenarios.weights)
    energy = s.energy_kwh(pb.soc_initial_pct) + np.cumsum(
        charge * s.eta_charge * dt - discharge * dt / s.eta_discharge
    )
    mean = pb.scenarios.mean
    n = len(mean)
    actions = tuple(
        "charge" if charge[t] > 0 else "discharge" if discharge[t] > 0 else "idle" for t in range(n)
    )
    k_n = pb.scenarios.prices.shape[0]
    reason = f"scenario plan: expected over {k_n} scenarios, first {pb.commit_steps} shared"
    return Schedule(
        status="optimal",
        charge_kw=charge,
        discharge_kw=discharge,
        energy_kwh=energy,
        soc_pct=energy / s.capacity_kwh * 100.0,
        prices=mean,
        step_h=dt,
        revenue=float(np.sum(mean * (discharge - charge)) * dt / 1000.0),
        degradation_cost=s.degradation_per_mwh
        * cell_throughput_kwh(charge, discharge, dt, s)
        / 1000.0,
        energy_value_per_mwh=np.full(n, np.nan),
        actions=actions,
        reasons=(reason,) * n,
        violations=(),
        solver="scenario-lp",
        solve_time_s=time.perf_counter() - started,
        soc_initial_pct=pb.soc_initial_pct,
    )
