"""The arbitrage optimizer: a linear program on HiGHS, made exact and never infeasible.

Per step t (length ``step_h`` hours) the variables are charge ``c_t`` and discharge ``d_t``
(kW at the AC terminals, both >= 0) and stored energy ``e_t`` (kWh at the end of the step):

    e_t = e_{t-1} + eta_c * c_t * dt - d_t * dt / eta_d

Revenue is ``sum p_t (d_t - c_t) dt / 1000`` in the price currency (prices per MWh). Wear costs
``degradation_per_mwh`` per MWh of cell throughput (energy into plus energy out of storage).
Every constraint a measured state can break (SOC bounds, terminal target, cycle cap, grid limits)
has a slack variable priced far above any possible gain, so the problem is always feasible and
a non-zero slack is reported as a violation. Charging and discharging in the same step is
excluded exactly: the LP is solved first; when its optimum already has no simultaneous step it is
optimal for the mixed-integer problem too (the LP is a relaxation), otherwise a binary switch
per step is added and the MILP solved. Stored-energy values come from the LP with the switches
fixed at their optimum.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import highspy
import numpy as np
import numpy.typing as npt

from bessai.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
Status = Literal["optimal", "feasible", "fallback-idle", "rule"]

# Relative weight of the tie-breaking throughput cost (of the largest |price|): small enough to
# move revenue by well under 1e-4 of the traded value (3e-7 on a year of Crucero), large enough
# to make cycling at zero spread strictly worse and to pick the same vertex among equal prices
# whatever the solver path (1e-5 was below HiGHS's tolerances: presolve on/off chose
# different plans on persistence forecasts full of equal zero prices).
_TIE_BREAK = 1e-4
_ACT_TOL_KW = 1e-6


@dataclass(frozen=True, slots=True)
class Battery:
    """What the optimizer needs to know about the battery; ``soc_*`` in percent of capacity."""

    power_kw: float = 1000.0
    capacity_kwh: float = 4000.0
    eta_charge: float = 0.95
    eta_discharge: float = 0.95
    soc_min_pct: float = 0.0
    soc_max_pct: float = 100.0
    degradation_per_mwh: float = 0.0
    cycles_per_day: float | None = None
    discharge_power_kw: float | None = None  # defaults to power_kw

    def __post_init__(self) -> None:
        checks = [
            (self.power_kw > 0, "power_kw must be > 0"),
            (self.capacity_kwh > 0, "capacity_kwh must be > 0"),
            (0 < self.eta_charge <= 1, "eta_charge must be in (0, 1]"),
            (0 < self.eta_discharge <= 1, "eta_discharge must be in (0, 1]"),
            (
                0 <= self.soc_min_pct <= self.soc_max_pct <= 100,
                "need 0 <= soc_min_pct <= soc_max_pct <= 100",
            ),
            (self.degradation_per_mwh >= 0, "degradation_per_mwh must be >= 0"),
            (
                self.cycles_per_day is None or self.cycles_per_day > 0,
                "cycles_per_day must be > 0",
            ),
            (
                self.discharge_power_kw is None or self.discharge_power_kw > 0,
                "discharge_power_kw must be > 0",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"battery: {message}")

    @property
    def p_charge_kw(self) -> float:
        return self.power_kw

    @property
    def p_discharge_kw(self) -> float:
        return self.discharge_power_kw if self.discharge_power_kw is not None else self.power_kw

    def energy_kwh(self, soc_pct: float) -> float:
        return soc_pct / 100.0 * self.capacity_kwh


@dataclass(frozen=True, slots=True)
class Site:
    """A site behind the grid connection: the battery optimises the net grid flow
    ``load - pv + charge - discharge`` (kW, > 0 = import) within optional limits."""

    load_kw: Sequence[float] | None = None
    pv_kw: Sequence[float] | None = None
    import_limit_kw: float | None = None
    export_limit_kw: float | None = None


@dataclass(frozen=True, slots=True)
class Bands:
    """Forecast quantiles per step, in the price unit."""

    p10: Sequence[float] | FloatArray
    p50: Sequence[float] | FloatArray
    p90: Sequence[float] | FloatArray

    def confidence(self) -> FloatArray:
        """1 - (p90 - p10) / max(|p50|, 1): 1 for a sharp forecast, 0 when the band is as wide
        as the price itself."""
        p10, p50, p90 = (np.asarray(x, dtype=np.float64) for x in (self.p10, self.p50, self.p90))
        width = np.maximum(p90 - p10, 0.0)
        return np.clip(1.0 - width / np.maximum(np.abs(p50), 1.0), 0.0, 1.0)


@dataclass(frozen=True, slots=True)
class Risk:
    """Risk-aware options for a forecast with bands.

    ``min_spread``: a trade must earn at least this (price unit) between the discharge and the
    charge price on top of losses and wear; it enters as a hurdle of half of it on each side.
    ``min_confidence``: steps whose band confidence is lower are held idle.
    ``conservative``: optimise against charge at p90 and discharge at p10 instead of p50.
    """

    min_spread: float = 0.0
    min_confidence: float = 0.0
    conservative: bool = False


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


def cell_throughput_kwh(
    charge_kw: FloatArray, discharge_kw: FloatArray, step_h: float, battery: Battery
) -> float:
    """Energy into plus energy out of the cells (the basis of wear and of full cycles)."""
    return float(
        np.sum(
            charge_kw * battery.eta_charge * step_h + discharge_kw * step_h / battery.eta_discharge
        )
    )


@dataclass(slots=True)
class _Lp:
    """A model in column form for HiGHS, built with named column blocks."""

    n_cols: int = 0
    cost: list[float] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    row_lower: list[float] = field(default_factory=list)
    row_upper: list[float] = field(default_factory=list)
    entries: list[tuple[int, int, float]] = field(default_factory=list)  # row, col, value

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

    def to_highs(self, integer_cols: Sequence[int] = ()) -> highspy.Highs:
        lp = highspy.HighsLp()
        lp.num_col_ = self.n_cols
        lp.num_row_ = len(self.row_lower)
        lp.col_cost_ = np.array(self.cost)
        lp.col_lower_ = np.array(self.lower)
        lp.col_upper_ = np.array(self.upper)
        lp.row_lower_ = np.array(self.row_lower)
        lp.row_upper_ = np.array(self.row_upper)
        ent = sorted(self.entries, key=lambda e: (e[1], e[0]))
        starts = np.zeros(self.n_cols + 1, dtype=np.int32)
        for _, c, _ in ent:
            starts[c + 1] += 1
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.cumsum(starts).astype(np.int32)
        lp.a_matrix_.index_ = np.array([r for r, _, _ in ent], dtype=np.int32)
        lp.a_matrix_.value_ = np.array([v for _, _, v in ent], dtype=np.float64)
        if integer_cols:
            integrality = [highspy.HighsVarType.kContinuous] * self.n_cols
            for c in integer_cols:
                integrality[c] = highspy.HighsVarType.kInteger
            lp.integrality_ = integrality
        h = _new_highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("threads", 1)
        h.setOptionValue("random_seed", 0)
        if not integer_cols:
            # These LPs are small and already tight; presolve costs more than it saves
            # (measured: about half the solve time at 24 steps, a quarter at 8,760).
            h.setOptionValue("presolve", "off")
        h.passModel(lp)
        return h


_banner_shown = False


def _new_highs() -> highspy.Highs:
    """A silent HiGHS instance. The library prints its banner on stdout when the first instance
    is made, before any option can stop it; that would corrupt `--json` output, so the first
    construction runs with file descriptor 1 pointed at /dev/null."""
    global _banner_shown
    if _banner_shown:
        return highspy.Highs()  # type: ignore[no-untyped-call]
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            h = highspy.Highs()  # type: ignore[no-untyped-call]
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        _banner_shown = True
    return h


@dataclass(frozen=True, slots=True)
class _Layout:
    c: int
    d: int
    e: int
    slack_soc_lo: int
    slack_soc_hi: int
    slack_final: int
    grid_lo: int | None
    grid_hi: int | None
    cycle_slack: int | None
    u: int | None
    u_cols: tuple[int, ...]
    balance_rows: int
    terminal_row: int
    cycle_rows: tuple[int, ...]
    cycle_blocks: tuple[tuple[int, int], ...]
    grid_rows: int | None


def optimize(
    prices: Sequence[float] | FloatArray,
    step_h: float,
    battery: Battery,
    *,
    soc_initial_pct: float,
    soc_final_pct: float | None = None,
    site: Site | None = None,
    bands: Bands | None = None,
    risk: Risk | None = None,
    time_limit_s: float = 30.0,
) -> Schedule:
    """Optimise a battery schedule over the horizon of ``prices`` (per MWh, one per step).

    ``soc_final_pct`` is the minimum SOC at the end of the horizon (default: the initial SOC).
    With a forecast, ``prices`` is its point forecast (p50) and ``bands`` its quantiles: they
    drive the confidence filter, the conservative decision prices (p90 to charge, p10 to
    discharge when ``risk.conservative``) and the conservative revenue estimate.
    """
    started = time.perf_counter()
    p = np.asarray(prices, dtype=np.float64)
    n = len(p)
    if n == 0:
        raise ConfigError("optimize: the price horizon is empty")
    if not np.all(np.isfinite(p)):
        raise ConfigError("optimize: prices contain NaN or infinite values")
    if not step_h > 0:
        raise ConfigError("optimize: step_h must be > 0")
    risk = risk or Risk()
    if site is not None:
        _site_base(site, n)  # rejects profiles of the wrong length before any solve
    if bands is not None:
        for name in ("p10", "p50", "p90"):
            if len(getattr(bands, name)) != n:
                raise ConfigError(f"optimize: bands.{name} has a different length than prices")
    if not math.isfinite(soc_initial_pct):
        raise ConfigError("optimize: soc_initial_pct must be a number")
    soc_final = soc_initial_pct if soc_final_pct is None else soc_final_pct
    messages: list[str] = []
    # A target outside the SOC bounds would make the terminal and the SOC slack fight each
    # other; plan for the nearest bound and say so.
    wanted_final = soc_final
    soc_final = min(max(soc_final, battery.soc_min_pct), battery.soc_max_pct)
    if soc_final != wanted_final:
        messages.append(
            f"final SOC target {wanted_final:g} % is outside the SOC bounds; planned for "
            f"{soc_final:g} %"
        )
    price_c = p.copy()
    price_d = p.copy()
    if bands is not None and risk.conservative:
        price_c = np.asarray(bands.p90, dtype=np.float64)
        price_d = np.asarray(bands.p10, dtype=np.float64)
    held = np.zeros(n, dtype=bool)
    confidence = bands.confidence() if bands is not None else np.ones(n)
    if bands is not None and risk.min_confidence > 0:
        held = confidence < risk.min_confidence

    def solve(
        switched: npt.NDArray[np.bool_] | None, fixed_u: FloatArray | None
    ) -> tuple[highspy.Highs, _Layout]:
        model, layout = _build(
            price_c,
            price_d,
            step_h,
            battery,
            soc_initial_pct,
            soc_final,
            site,
            risk.min_spread,
            held,
            switched,
            fixed_u,
        )
        integer = [] if fixed_u is not None or layout.u is None else list(layout.u_cols)
        h = model.to_highs(integer)
        h.setOptionValue("time_limit", float(time_limit_s))
        h.run()
        return h, layout

    h, layout = solve(None, None)
    status = _status(h)
    x = _values(h)
    solver = "lp"
    mip_gap = 0.0
    switched = np.zeros(n, dtype=bool)
    # The LP optimum may trade both ways in a step (burning losses pays at negative prices).
    # Add the binary switch only where it did and re-solve; a solution with no simultaneous
    # step is optimal for the full MILP because every such model relaxes it. After a few
    # rounds, switch every step.
    rounds = 0
    while status is not None and (simultaneous := _simultaneous(x, layout, n)).any():
        rounds += 1
        if rounds == 1:
            # Burning energy can only pay where a price is negative: switch all those at once.
            simultaneous |= (price_c < 0) | (price_d < 0)
        switched = np.ones(n, dtype=bool) if rounds > 4 else switched | simultaneous
        h_mip, layout_mip = solve(switched, None)
        status_mip = _status(h_mip)
        if status_mip is None:
            status = None
            break
        x_mip = _values(h_mip)
        u = np.round(x_mip[list(layout_mip.u_cols)])
        if status_mip == "feasible":
            mip_gap = float(h_mip.getInfo().mip_gap)
        # Stored-energy values come from the LP with the switches fixed at the optimum.
        h, layout = solve(switched, u)
        status = (
            ("feasible" if status_mip == "feasible" or status == "feasible" else "optimal")
            if _status(h) is not None
            else None
        )
        x = _values(h)
        solver = "milp"
    if status is None:
        messages.append(f"solver failed ({h.modelStatusToString(h.getModelStatus())}); idle plan")
        return _idle(p, step_h, battery, soc_initial_pct, time.perf_counter() - started, messages)
    duals = np.asarray(h.getSolution().row_dual, dtype=np.float64)
    return _result(
        x,
        duals,
        layout,
        status,
        solver,
        mip_gap,
        p,
        price_c,
        price_d,
        step_h,
        battery,
        soc_initial_pct,
        soc_final,
        risk,
        held,
        confidence,
        bands,
        time.perf_counter() - started,
        messages,
    )


def _status(h: highspy.Highs) -> Status | None:
    ms = h.getModelStatus()
    if ms == highspy.HighsModelStatus.kOptimal:
        return "optimal"
    has_solution = (
        h.getInfo().primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible
    )
    if ms in (highspy.HighsModelStatus.kTimeLimit, highspy.HighsModelStatus.kIterationLimit):
        return "feasible" if has_solution else None
    return None


def _values(h: highspy.Highs) -> FloatArray:
    return np.asarray(h.getSolution().col_value, dtype=np.float64)


def _simultaneous(x: FloatArray, layout: _Layout, n: int) -> npt.NDArray[np.bool_]:
    c = x[layout.c : layout.c + n]
    d = x[layout.d : layout.d + n]
    return np.minimum(c, d) > _ACT_TOL_KW


def _build(
    price_c: FloatArray,
    price_d: FloatArray,
    dt: float,
    b: Battery,
    soc0: float,
    soc_final: float,
    site: Site | None,
    min_spread: float,
    held: npt.NDArray[np.bool_],
    switched: npt.NDArray[np.bool_] | None,
    fixed_u: FloatArray | None,
) -> tuple[_Lp, _Layout]:
    n = len(price_c)
    lp = _Lp()
    e0 = b.energy_kwh(soc0)
    e_min, e_max = b.energy_kwh(b.soc_min_pct), b.energy_kwh(b.soc_max_pct)
    e_final = b.energy_kwh(soc_final)
    scale = float(max(np.max(np.abs(price_c)), np.max(np.abs(price_d)), 1.0))
    # Penalty per kWh of slack: far above the most any kWh can earn in one step (buy at the
    # lowest, sell at the highest price through both losses, plus wear and hurdle).
    big = 100.0 * (2 * scale + b.degradation_per_mwh + min_spread + 1.0) / 1000.0
    big /= b.eta_charge * b.eta_discharge
    wear_c = b.degradation_per_mwh / 1000.0 * b.eta_charge * dt
    wear_d = b.degradation_per_mwh / 1000.0 * dt / b.eta_discharge
    hurdle = min_spread / 2.0 / 1000.0 * dt
    # Throughput cost for ties, rising slowly with time so equal prices favour earlier steps.
    tie = _TIE_BREAK * scale / 1000.0 * dt * (1.0 + np.arange(n) / n)
    cost_c = price_c / 1000.0 * dt + wear_c + hurdle + tie
    cost_d = -price_d / 1000.0 * dt + wear_d + hurdle + tie
    pc = np.where(held, 0.0, b.p_charge_kw)
    pd = np.where(held, 0.0, b.p_discharge_kw)

    c = lp.cols(n, list(cost_c), 0.0, 0.0)
    d = lp.cols(n, list(cost_d), 0.0, 0.0)
    for t in range(n):
        lp.upper[c + t] = float(pc[t])
        lp.upper[d + t] = float(pd[t])
    e = lp.cols(n, 0.0, min(0.0, e0), max(b.capacity_kwh, e0))
    s_lo = lp.cols(n, big, 0.0, math.inf)
    s_hi = lp.cols(n, big, 0.0, math.inf)
    s_fin = lp.cols(1, big, 0.0, math.inf)

    first_balance = len(lp.row_lower)
    for t in range(n):
        terms = [(e + t, 1.0), (c + t, -b.eta_charge * dt), (d + t, dt / b.eta_discharge)]
        if t > 0:
            terms.append((e + t - 1, -1.0))
        rhs = e0 if t == 0 else 0.0
        lp.row(rhs, rhs, terms)
    for t in range(n):
        lp.row(e_min, e_max, [(e + t, 1.0), (s_lo + t, 1.0), (s_hi + t, -1.0)])
    terminal_row = lp.row(e_final, math.inf, [(e + n - 1, 1.0), (s_fin, 1.0)])

    cycle_rows: list[int] = []
    blocks: list[tuple[int, int]] = []
    cyc: int | None = None
    if b.cycles_per_day is not None:
        per_day = max(1, round(24.0 / dt))
        blocks = [(k, min(k + per_day, n)) for k in range(0, n, per_day)]
        cyc = lp.cols(len(blocks), big, 0.0, math.inf)
        for i, (lo, hi) in enumerate(blocks):
            # Full cycles counted on cell throughput: one cycle = capacity in and out.
            cap = 2.0 * b.cycles_per_day * b.capacity_kwh * (hi - lo) * dt / 24.0
            terms = [(c + t, b.eta_charge * dt) for t in range(lo, hi)]
            terms += [(d + t, dt / b.eta_discharge) for t in range(lo, hi)]
            terms.append((cyc + i, -1.0))
            cycle_rows.append(lp.row(-math.inf, cap, terms))

    g_lo = g_hi = grid_first = None
    if site is not None and (site.import_limit_kw is not None or site.export_limit_kw is not None):
        base = _site_base(site, n)
        imp = math.inf if site.import_limit_kw is None else site.import_limit_kw
        exp = math.inf if site.export_limit_kw is None else site.export_limit_kw
        g_hi = lp.cols(n, big * dt, 0.0, math.inf)
        g_lo = lp.cols(n, big * dt, 0.0, math.inf)
        grid_first = len(lp.row_lower)
        for t in range(n):
            lp.row(
                -exp - base[t],
                imp - base[t],
                [(c + t, 1.0), (d + t, -1.0), (g_hi + t, -1.0), (g_lo + t, 1.0)],
            )

    u: int | None = None
    u_cols: list[int] = []
    if switched is not None and switched.any():
        steps = [int(t) for t in np.flatnonzero(switched)]
        u = lp.cols(len(steps), 0.0, 0.0, 1.0)
        for i, t in enumerate(steps):
            col = u + i
            u_cols.append(col)
            if fixed_u is not None:
                lp.lower[col] = lp.upper[col] = float(fixed_u[i])
            lp.row(-math.inf, 0.0, [(c + t, 1.0), (col, -float(pc[t]))])
            lp.row(-math.inf, float(pd[t]), [(d + t, 1.0), (col, float(pd[t]))])
    layout = _Layout(
        c,
        d,
        e,
        s_lo,
        s_hi,
        s_fin,
        g_lo,
        g_hi,
        cyc,
        u,
        tuple(u_cols),
        first_balance,
        terminal_row,
        tuple(cycle_rows),
        tuple(blocks),
        grid_first,
    )
    return lp, layout


def _site_base(site: Site, n: int) -> FloatArray:
    load = np.zeros(n) if site.load_kw is None else np.asarray(site.load_kw, dtype=np.float64)
    pv = np.zeros(n) if site.pv_kw is None else np.asarray(site.pv_kw, dtype=np.float64)
    if len(load) != n or len(pv) != n:
        raise ConfigError("optimize: site load/pv profiles must have one value per price step")
    return load - pv


def _initial_violations(b: Battery, soc0: float) -> list[Violation]:
    """The measured state itself can be outside the limits; the plan then recovers as fast as
    the penalties make it, and the starting breach is reported before anything else."""
    e0 = b.energy_kwh(soc0)
    out: list[Violation] = []
    if soc0 < b.soc_min_pct:
        out.append(
            Violation(
                0,
                "soc_below_min",
                b.energy_kwh(b.soc_min_pct) - e0,
                f"initial SOC {soc0:g} % is below the minimum {b.soc_min_pct:g} %",
            )
        )
    if soc0 > b.soc_max_pct:
        out.append(
            Violation(
                0,
                "soc_above_max",
                e0 - b.energy_kwh(b.soc_max_pct),
                f"initial SOC {soc0:g} % is above the maximum {b.soc_max_pct:g} %",
            )
        )
    return out


def _idle(
    p: FloatArray,
    step_h: float,
    b: Battery,
    soc0: float,
    elapsed: float,
    messages: list[str],
) -> Schedule:
    n = len(p)
    zeros = np.zeros(n)
    return Schedule(
        status="fallback-idle",
        charge_kw=zeros,
        discharge_kw=zeros.copy(),
        energy_kwh=np.full(n, b.energy_kwh(soc0)),
        soc_pct=np.full(n, soc0),
        prices=p,
        step_h=step_h,
        revenue=0.0,
        degradation_cost=0.0,
        energy_value_per_mwh=np.full(n, np.nan),
        actions=("idle",) * n,
        reasons=("idle: solver failed",) * n,
        violations=tuple(_initial_violations(b, soc0)),
        solver="none",
        solve_time_s=elapsed,
        soc_initial_pct=soc0,
        messages=tuple(messages),
    )


def _result(
    x: FloatArray,
    duals: FloatArray,
    lay: _Layout,
    status: Status,
    solver: str,
    mip_gap: float,
    p: FloatArray,
    price_c: FloatArray,
    price_d: FloatArray,
    dt: float,
    b: Battery,
    soc0: float,
    soc_final: float,
    risk: Risk,
    held: npt.NDArray[np.bool_],
    confidence: FloatArray,
    bands: Bands | None,
    elapsed: float,
    messages: list[str],
) -> Schedule:
    n = len(p)
    c = np.clip(x[lay.c : lay.c + n], 0.0, None)
    d = np.clip(x[lay.d : lay.d + n], 0.0, None)
    c[c < _ACT_TOL_KW] = 0.0
    d[d < _ACT_TOL_KW] = 0.0
    e = x[lay.e : lay.e + n]
    soc = e / b.capacity_kwh * 100.0
    # HiGHS reports d(objective)/d(rhs); one more kWh arriving in storage lowers the cost.
    value = -duals[lay.balance_rows : lay.balance_rows + n] * 1000.0
    revenue = float(np.sum(p * (d - c)) * dt / 1000.0)
    wear = b.degradation_per_mwh * cell_throughput_kwh(c, d, dt, b) / 1000.0
    conservative = None
    if bands is not None:
        p10 = np.asarray(bands.p10, dtype=np.float64)
        p90 = np.asarray(bands.p90, dtype=np.float64)
        conservative = float(np.sum(p10 * d - p90 * c) * dt / 1000.0)

    violations: list[Violation] = []
    tol = 1e-6 * b.capacity_kwh
    violations.extend(_initial_violations(b, soc0))
    for t in range(n):
        lo = x[lay.slack_soc_lo + t]
        hi = x[lay.slack_soc_hi + t]
        if lo > tol:
            pct = lo / b.capacity_kwh * 100
            violations.append(
                Violation(t, "soc_below_min", lo, f"SOC {pct:.2f} % below the minimum")
            )
        if hi > tol:
            pct = hi / b.capacity_kwh * 100
            violations.append(
                Violation(t, "soc_above_max", hi, f"SOC {pct:.2f} % above the maximum")
            )
    fin = x[lay.slack_final]
    if fin > tol:
        violations.append(
            Violation(
                n - 1,
                "terminal_target",
                fin,
                f"final SOC {fin / b.capacity_kwh * 100:.2f} % short of the {soc_final:g} % target",
            )
        )
    capped: set[int] = set()
    if lay.cycle_slack is not None:
        for i, (lo_t, hi_t) in enumerate(lay.cycle_blocks):
            over = x[lay.cycle_slack + i]
            if over > tol:
                violations.append(
                    Violation(lo_t, "cycle_cap", over, f"cycle cap exceeded by {over:.1f} kWh")
                )
            if abs(duals[lay.cycle_rows[i]]) > 1e-9:
                capped.update(range(lo_t, hi_t))
    if lay.grid_hi is not None and lay.grid_lo is not None:
        for t in range(n):
            over = x[lay.grid_hi + t] + x[lay.grid_lo + t]
            if over > 1e-6:
                violations.append(
                    Violation(t, "grid_limit", over, f"grid limit exceeded by {over:.1f} kW")
                )

    actions, reasons = _explain(
        c, d, e, value, p, price_c, price_d, dt, b, soc0, risk, held, confidence, violations, capped
    )
    if abs(duals[lay.terminal_row]) > 1e-9 and fin <= tol:
        reasons[-1] += "; terminal target"
    if lay.grid_rows is not None:
        for t in range(n):
            # A non-zero dual on the site's grid row: the import or export limit shapes the step.
            if abs(duals[lay.grid_rows + t]) > 1e-9:
                reasons[t] += "; grid limit"
    return Schedule(
        status=status,
        charge_kw=c,
        discharge_kw=d,
        energy_kwh=e,
        soc_pct=soc,
        prices=p,
        step_h=dt,
        revenue=revenue,
        degradation_cost=wear,
        energy_value_per_mwh=value,
        actions=tuple(actions),
        reasons=tuple(reasons),
        violations=tuple(violations),
        solver=solver,
        solve_time_s=elapsed,
        mip_gap=mip_gap,
        conservative_revenue=conservative,
        soc_initial_pct=soc0,
        messages=tuple(messages),
    )


def _explain(
    c: FloatArray,
    d: FloatArray,
    e: FloatArray,
    value: FloatArray,
    p: FloatArray,
    price_c: FloatArray,
    price_d: FloatArray,
    dt: float,
    b: Battery,
    soc0: float,
    risk: Risk,
    held: npt.NDArray[np.bool_],
    confidence: FloatArray,
    violations: list[Violation],
    capped: set[int],
) -> tuple[list[str], list[str]]:
    """Action and a one-line reason per step, from the solution and stored-energy values."""
    n = len(p)
    tol_e = 1e-6 * b.capacity_kwh + 1e-9
    e_min, e_max = b.energy_kwh(b.soc_min_pct), b.energy_kwh(b.soc_max_pct)
    # Rank 1 = cheapest for charging, 1 = dearest for discharging; ties by time.
    cheap_rank = np.empty(n, dtype=np.int64)
    cheap_rank[np.lexsort((np.arange(n), p))] = np.arange(1, n + 1)
    dear_rank = np.empty(n, dtype=np.int64)
    dear_rank[np.lexsort((np.arange(n), -p))] = np.arange(1, n + 1)
    by_step: dict[int, list[str]] = {}
    for v in violations:
        if v.kind in ("soc_below_min", "soc_above_max", "grid_limit"):
            by_step.setdefault(v.step, []).append(v.message)
    wear_c = b.degradation_per_mwh * b.eta_charge
    wear_d = b.degradation_per_mwh / b.eta_discharge
    actions: list[str] = []
    reasons: list[str] = []
    for t in range(n):
        before = b.energy_kwh(soc0) if t == 0 else e[t - 1]
        after = e[t]
        price = f"{p[t]:.2f}"
        binding: list[str] = []
        if c[t] > 0:
            action = "charge"
            if c[t] >= b.p_charge_kw - 1e-6:
                binding.append("power limit")
            if after >= e_max - tol_e:
                binding.append("SOC full")
            if t in capped:
                binding.append("cycle cap")
            head = f"charge: cheapest {cheap_rank[t]} of {n} ({price})"
        elif d[t] > 0:
            action = "discharge"
            if d[t] >= b.p_discharge_kw - 1e-6:
                binding.append("power limit")
            if after <= e_min + tol_e:
                binding.append("SOC empty")
            if t in capped:
                binding.append("cycle cap")
            head = f"discharge: dearest {dear_rank[t]} of {n} ({price})"
        else:
            action = "idle"
            lam = value[t]
            buy_below = lam * b.eta_charge - wear_c
            sell_above = lam / b.eta_discharge + wear_d
            if held[t]:
                head = (
                    f"hold: confidence {confidence[t]:.2f} < min_confidence {risk.min_confidence:g}"
                )
            elif price_c[t] < buy_below - 1e-9 and before >= e_max - tol_e:
                head = f"idle: cheap ({price}) but SOC full"
            elif price_d[t] > sell_above + 1e-9 and before <= e_min + tol_e:
                head = f"idle: dear ({price}) but SOC empty"
            elif t in capped:
                head = "idle: cycle cap reached"
            elif risk.min_spread > 0 and (price_c[t] < buy_below or price_d[t] > sell_above):
                # At this stored-energy value the step would trade; only the hurdle stops it.
                head = f"hold: spread below min_spread {risk.min_spread:g}"
            else:
                head = (
                    f"idle: price {price} inside the no-trade band "
                    f"[{buy_below:.2f}, {sell_above:.2f}] (losses and wear not covered)"
                )
        text = head + ("; " + ", ".join(binding) if binding else "")
        if t in by_step:
            text += "; violation: " + "; ".join(by_step[t])
        actions.append(action)
        reasons.append(text)
    return actions, reasons
