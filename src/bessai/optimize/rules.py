"""The original design's rule engine, kept as a baseline for the optimizer.

The rule, exactly (one horizon, usually one market day, on a price forecast):

1. ``n_charge`` = the number of steps a full-power charge needs to fill the usable range from
   the minimum to the maximum SOC (``ceil(usable_kwh / (P_charge * eta_c * dt))``), and
   ``n_discharge`` likewise to empty it (``ceil(usable_kwh * eta_d / (P_discharge * dt))``).
2. Steps whose forecast confidence is below ``min_confidence`` take no part.
3. The charge set is the ``n_charge`` cheapest remaining steps; the discharge set the
   ``n_discharge`` dearest steps not in the charge set (ties go to the earlier step).
4. The day trades only if the round-trip margin
   ``eta_c * eta_d * mean(discharge prices) - mean(charge prices) - 2 * degradation``
   exceeds ``min_spread``; otherwise the battery holds all day.
5. In time order: charge at full power in charge steps and discharge at full power in discharge
   steps, each cut to what the SOC limits allow; idle otherwise. No terminal target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from bessai.optimize.schedule import Schedule
from bessai.optimize.storage import FloatArray, StorageSpec, cell_throughput_kwh


def _trade_sets(
    p: FloatArray, eligible_mask: npt.NDArray[np.bool_], n_charge: int, n_discharge: int
) -> tuple[set[int], set[int]]:
    """The ``n_charge`` cheapest eligible steps, and the ``n_discharge`` dearest eligible steps
    not among them (ties to the earlier step)."""
    eligible = np.flatnonzero(eligible_mask)
    cheap_first = eligible[np.lexsort((eligible, p[eligible]))]
    charge_set = set(cheap_first[:n_charge].tolist())
    dear_first = [t for t in eligible[np.lexsort((eligible, -p[eligible]))] if t not in charge_set]
    return charge_set, set(dear_first[:n_discharge])


def rule_schedule(
    forecast: Sequence[float] | FloatArray,
    step_h: float,
    storage: StorageSpec,
    *,
    soc_initial_pct: float,
    confidence: Sequence[float] | FloatArray | None = None,
    min_confidence: float = 0.0,
    min_spread: float = 0.0,
) -> Schedule:
    """The rule engine's plan for one horizon of forecast prices (per MWh)."""
    p = np.asarray(forecast, dtype=np.float64)
    n = len(p)
    b = storage
    e_min, e_max = b.energy_kwh(b.soc_min_pct), b.energy_kwh(b.soc_max_pct)
    usable = e_max - e_min
    n_charge = math.ceil(usable / (b.charge_limit_kw * b.eta_charge * step_h) - 1e-9)
    n_discharge = math.ceil(usable * b.eta_discharge / (b.discharge_limit_kw * step_h) - 1e-9)
    conf = np.ones(n) if confidence is None else np.asarray(confidence, dtype=np.float64)
    charge_set, discharge_set = _trade_sets(p, conf >= min_confidence, n_charge, n_discharge)
    margin = -math.inf
    if charge_set and discharge_set:
        mean_c = float(np.mean(p[list(charge_set)]))
        mean_d = float(np.mean(p[list(discharge_set)]))
        margin = b.eta_charge * b.eta_discharge * mean_d - mean_c - 2 * b.degradation_per_mwh
    trade = margin > min_spread

    c = np.zeros(n)
    d = np.zeros(n)
    e = np.zeros(n)
    level = b.energy_kwh(soc_initial_pct)
    reasons: list[str] = []
    actions: list[str] = []
    for t in range(n):
        if not trade:
            reason = (
                f"hold: margin {margin:.2f} <= min_spread {min_spread:g}"
                if math.isfinite(margin)
                else "hold: no eligible steps"
            )
            action = "idle"
        elif conf[t] < min_confidence:
            action, reason = "idle", f"hold: confidence {conf[t]:.2f} < {min_confidence:g}"
        elif t in charge_set:
            room = max(0.0, e_max - level)
            c[t] = min(b.charge_limit_kw, room / (b.eta_charge * step_h))
            action = "charge" if c[t] > 0 else "idle"
            reason = "rule: cheapest steps" + ("" if c[t] > 0 else ", but SOC full")
        elif t in discharge_set:
            avail = max(0.0, level - e_min)
            d[t] = min(b.discharge_limit_kw, avail * b.eta_discharge / step_h)
            action = "discharge" if d[t] > 0 else "idle"
            reason = "rule: dearest steps" + ("" if d[t] > 0 else ", but SOC empty")
        else:
            action, reason = "idle", "rule: neither cheapest nor dearest"
        level += c[t] * b.eta_charge * step_h - d[t] * step_h / b.eta_discharge
        e[t] = level
        actions.append(action)
        reasons.append(reason)
    wear = b.degradation_per_mwh * cell_throughput_kwh(c, d, step_h, b) / 1000.0
    return Schedule(
        status="rule",
        charge_kw=c,
        discharge_kw=d,
        energy_kwh=e,
        soc_pct=e / b.capacity_kwh * 100.0,
        prices=p,
        step_h=step_h,
        revenue=float(np.sum(p * (d - c)) * step_h / 1000.0),
        degradation_cost=wear,
        energy_value_per_mwh=np.full(n, np.nan),
        actions=tuple(actions),
        reasons=tuple(reasons),
        violations=(),
        solver="rule",
        solve_time_s=0.0,
        soc_initial_pct=soc_initial_pct,
    )
