"""The one-line reason for every step of a plan, from the solution and the stored-energy value
(docs/optimizer.md, "Explanations")."""

from __future__ import annotations

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
    binds."""

    value_per_mwh: FloatArray
    capped: set[int]
    terminal: bool
    grid: set[int]


def _ranks(p: FloatArray) -> tuple[IntArray, IntArray]:
    """Rank 1 = cheapest for charging, 1 = dearest for discharging; ties by time."""
    n = len(p)
    cheap = np.empty(n, dtype=np.int64)
    cheap[np.lexsort((np.arange(n), p))] = np.arange(1, n + 1)
    dear = np.empty(n, dtype=np.int64)
    dear[np.lexsort((np.arange(n), -p))] = np.arange(1, n + 1)
    return cheap, dear


def _idle_head(pb: Problem, t: int, before_kwh: float, duals: Duals) -> str:
    """Why a step does not trade."""
    s, risk = pb.storage, pb.risk
    tol_e = 1e-6 * s.capacity_kwh + 1e-9
    price = f"{pb.prices[t]:.2f}"
    lam = duals.value_per_mwh[t]
    buy_below = lam * s.eta_charge - s.degradation_per_mwh * s.eta_charge
    sell_above = lam / s.eta_discharge + s.degradation_per_mwh / s.eta_discharge
    price_c, price_d = pb.price_charge[t], pb.price_discharge[t]
    if pb.held[t]:
        return f"hold: confidence {pb.confidence[t]:.2f} < min_confidence {risk.min_confidence:g}"
    if price_c < buy_below - 1e-9 and before_kwh >= s.e_max_kwh - tol_e:
        return f"idle: cheap ({price}) but SOC full"
    if price_d > sell_above + 1e-9 and before_kwh <= s.e_min_kwh + tol_e:
        return f"idle: dear ({price}) but SOC empty"
    if t in duals.capped:
        return "idle: cycle cap reached"
    if risk.min_spread > 0 and (price_c < buy_below or price_d > sell_above):
        # At this stored-energy value the step would trade; only the hurdle stops it.
        return f"hold: spread below min_spread {risk.min_spread:g}"
    return (
        f"idle: price {price} inside the no-trade band "
        f"[{buy_below:.2f}, {sell_above:.2f}] (losses and wear not covered)"
    )


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
            if c[t] >= s.charge_limit_kw - 1e-6:
                binding.append("power limit")
            if e[t] >= s.e_max_kwh - tol_e:
                binding.append("SOC full")
            head = f"charge: cheapest {cheap_rank[t]} of {n} ({price})"
        elif d[t] > 0:
            action = "discharge"
            if d[t] >= s.discharge_limit_kw - 1e-6:
                binding.append("power limit")
            if e[t] <= s.e_min_kwh + tol_e:
                binding.append("SOC empty")
            head = f"discharge: dearest {dear_rank[t]} of {n} ({price})"
        else:
            action = "idle"
            head = _idle_head(pb, t, before, duals)
        if action != "idle" and t in duals.capped:
            binding.append("cycle cap")
        text = head + ("; " + ", ".join(binding) if binding else "")
        if t in by_step:
            text += "; violation: " + "; ".join(by_step[t])
        if t == n - 1 and duals.terminal:
            text += "; terminal target"
        if t in duals.grid:
            # A non-zero dual on the site's grid row: the import or export limit shapes the step.
            text += "; grid limit"
        actions.append(action)
        reasons.append(text)
    return actions, reasons
