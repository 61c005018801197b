"""The one-line reason for every step of a plan, from the solution and the stored-energy value
(docs/optimizer.md, "Explanations")."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bessai.optimize.problem import Problem
from bessai.optimize.schedule import Violation
from bessai.optimize.storage import FloatArray

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Duals:
    """What the row duals say: the value of stored energy per step (per MWh), the steps whose
    day's cycle cap binds, whether the terminal target binds, and the steps whose grid limit
    binds; with the tie-break cost per MWh each step's trades pay in the objective."""

    value_per_mwh: FloatArray
    capped: set[int]
    terminal: bool
    grid: set[int]
    tie_per_mwh: FloatArray


def _ranks(p: FloatArray) -> tuple[IntArray, IntArray]:
    """Rank 1 = cheapest for charging, 1 = dearest for discharging; ties by time."""
    n = len(p)
    cheap = np.empty(n, dtype=np.int64)
    cheap[np.lexsort((np.arange(n), p))] = np.arange(1, n + 1)
    dear = np.empty(n, dtype=np.int64)
    dear[np.lexsort((np.arange(n), -p))] = np.arange(1, n + 1)
    return cheap, dear


#: How far (per MWh) a price may sit outside the no-trade band and still count as on its edge:
#: the solver's dual feasibility tolerance (1e-7 per kW and step) is below 1e-3 per MWh for
#: steps of 6 minutes and more.
_EDGE_TOL = 1e-3


@dataclass(frozen=True, slots=True)
class Band:
    """Below ``buy_below`` charging pays, above ``sell_above`` discharging pays, at the value
    of stored energy, after losses, wear, the tie-break cost and (``hurdle``) half the risk
    mode's minimum spread."""

    buy_below: float
    sell_above: float

    @classmethod
    def at(cls, pb: Problem, value_per_mwh: float, tie: float, hurdle: float) -> Band:
        s = pb.storage
        wear_c = s.degradation_per_mwh * s.eta_charge
        wear_d = s.degradation_per_mwh / s.eta_discharge
        return cls(
            value_per_mwh * s.eta_charge - wear_c - tie - hurdle,
            value_per_mwh / s.eta_discharge + wear_d + tie + hurdle,
        )


def _trades(band: Band, buy: float, sell: float) -> bool:
    """Whether buying at ``buy`` or selling at ``sell`` would pay, beyond the edge tolerance."""
    return buy < band.buy_below - _EDGE_TOL or sell > band.sell_above + _EDGE_TOL


def _other_limit(pb: Problem, t: int, duals: Duals) -> str:
    if t in duals.grid:
        return "the grid limit binds"
    return "another constraint binds"


def _band_reason(pb: Problem, t: int, band: Band, duals: Duals) -> str:
    """Why an idle step does not trade, by the no-trade band. The edges are printed rounded
    outwards and include a price on them, so the printed numbers agree with the words."""
    lo, hi = band.buy_below, band.sell_above
    buy, sell = float(pb.price_charge[t]), float(pb.price_discharge[t])
    why = "(losses and wear not covered)"
    if buy != sell:
        # Conservative mode: the step buys at its p90 and sells at its p10.
        if _trades(band, buy, sell):
            limit = _other_limit(pb, t, duals)
            return f"idle: p90 {buy:.2f} or p10 {sell:.2f} would trade, but {limit}"
        lo, hi = min(lo, buy), max(hi, sell)
        return (
            f"idle: p90 {buy:.2f} not below {_floor2(lo):.2f} and p10 {sell:.2f} not above "
            f"{_ceil2(hi):.2f} {why}"
        )
    if _trades(band, buy, sell):
        side = "below" if buy < lo else "above"
        return (
            f"idle: price {buy:.2f} {side} the no-trade band [{_floor2(lo):.2f}, "
            f"{_ceil2(hi):.2f}], but {_other_limit(pb, t, duals)}"
        )
    lo, hi = min(lo, buy), max(hi, buy)
    return (
        f"idle: price {buy:.2f} inside the no-trade band [{_floor2(lo):.2f}, {_ceil2(hi):.2f}] "
        f"{why}"
    )


def _floor2(x: float) -> float:
    return math.floor(round(x * 100.0, 6)) / 100.0


def _ceil2(x: float) -> float:
    return math.ceil(round(x * 100.0, 6)) / 100.0


def _idle_head(pb: Problem, t: int, before_kwh: float, duals: Duals) -> str:
    """Why a step does not trade."""
    s, risk = pb.storage, pb.risk
    tol_e = 1e-6 * s.capacity_kwh + 1e-9
    # Plain floats: numpy scalars make every comparison and rounding below several times slower.
    lam, tie = float(duals.value_per_mwh[t]), float(duals.tie_per_mwh[t])
    band = Band.at(pb, lam, tie, 0.0)
    price_c, price_d = float(pb.price_charge[t]), float(pb.price_discharge[t])
    if pb.held[t]:
        return f"hold: confidence {pb.confidence[t]:.2f} < min_confidence {risk.min_confidence:g}"
    if price_c < band.buy_below - _EDGE_TOL and before_kwh >= s.e_max_kwh - tol_e:
        return f"idle: cheap ({price_c:.2f}) but SOC full"
    if price_d > band.sell_above + _EDGE_TOL and before_kwh <= s.e_min_kwh + tol_e:
        return f"idle: dear ({price_d:.2f}) but SOC empty"
    if t in duals.capped:
        return "idle: cycle cap reached"
    if risk.min_spread > 0 and _trades(band, price_c, price_d):
        hurdle = Band.at(pb, lam, tie, risk.min_spread / 2.0)
        if not _trades(hurdle, price_c, price_d):
            # At this stored-energy value the step would trade; only the hurdle stops it.
            return f"hold: spread below min_spread {risk.min_spread:g}"
    return _band_reason(pb, t, band, duals)


def explain(
    pb: Problem,
    c: FloatArray,
    d: FloatArray,
    e: FloatArray,
    duals: Duals,
    violations: list[Violation],
) -> tuple[list[str], list[str]]:
    """Action (charge, discharge or idle) and a one-line reason per step."""
    n, s = pb.n, pb.storage
    tol_e = 1e-6 * s.capacity_kwh + 1e-9
    e_min, e_max = s.e_min_kwh, s.e_max_kwh
    charge_limit, discharge_limit = s.charge_limit_kw, s.discharge_limit_kw
    cheap_rank, dear_rank = _ranks(pb.prices)
    by_step: dict[int, list[str]] = {}
    for v in violations:
        if v.kind in ("soc_below_min", "soc_above_max", "grid_limit"):
            by_step.setdefault(v.step, []).append(v.message)
    actions: list[str] = []
    reasons: list[str] = []
    for t in range(n):
        before = s.energy_kwh(pb.soc_initial_pct) if t == 0 else e[t - 1]
        price = f"{pb.prices[t]:.2f}"
        binding: list[str] = []
        if c[t] > 0:
            action = "charge"
            binding += _binding(c[t] >= charge_limit - 1e-6, e[t] >= e_max - tol_e, "SOC full")
            head = f"charge: cheapest {cheap_rank[t]} of {n} ({price})"
        elif d[t] > 0:
            action = "discharge"
            binding += _binding(d[t] >= discharge_limit - 1e-6, e[t] <= e_min + tol_e, "SOC empty")
            head = f"discharge: dearest {dear_rank[t]} of {n} ({price})"
        else:
            action = "idle"
            head = _idle_head(pb, t, before, duals)
        if action != "idle" and t in duals.capped:
            binding.append("cycle cap")
        text = head + ("; " + ", ".join(binding) if binding else "")
        actions.append(action)
        reasons.append(text + _step_notes(t, n, by_step, duals))
    return actions, reasons


def _binding(at_power_limit: bool, at_soc_limit: bool, soc_label: str) -> list[str]:
    """The limits a charging or discharging step runs into."""
    return [
        label
        for label, binds in (("power limit", at_power_limit), (soc_label, at_soc_limit))
        if binds
    ]


def _step_notes(t: int, n: int, by_step: dict[int, list[str]], duals: Duals) -> str:
    """Violations, the terminal target and the grid limit, as they apply to step t."""
    text = ""
    if t in by_step:
        text += "; violation: " + "; ".join(by_step[t])
    if t == n - 1 and duals.terminal:
        text += "; terminal target"
    if t in duals.grid:
        # A non-zero dual on the site's grid row: the import or export limit shapes the step.
        text += "; grid limit"
    return text
