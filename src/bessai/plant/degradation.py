"""Battery wear: rainflow cycle counting (ASTM E1049-85) and an LFP capacity-fade model.

Rainflow
    `count_cycles(series)` returns sorted ``(range, count)`` pairs, half cycles counted as 0.5,
    following the three-point algorithm of ASTM E1049-85 section 5.4.4 exactly as the `rainflow`
    package implements it (same reversal rule, same half-cycle rule when the range contains the
    starting point, counts of equal ranges summed). One deliberate difference: a two-point
    series counts one half cycle (ASTM treats both ends as reversals); the package drops it.

Capacity fade (Sony/Murata US26650FTC1, LiFePO4/graphite, 3 Ah)
    Calendar term, Naumann et al. 2018, "Analysis and modeling of calendar aging of a commercial
    LiFePO4/graphite cell", J. Energy Storage 17, 153-169, doi:10.1016/j.est.2018.01.019::

        Q_cal = k_T(T) * k_SOC(SOC) * sqrt(t)                      [p.u., t in s]
        k_T   = 1.2571e-5 * exp(-17126 / R * (1/T - 1/298.15 K))
        k_SOC = 2.8575 * (SOC - 0.5)^3 + 0.60225                   [SOC in 0..1]

    Cycle term, Naumann et al. 2020, "Analysis and modeling of cycle aging of a commercial
    LiFePO4/graphite cell", J. Power Sources 451, 227666, doi:10.1016/j.jpowsour.2019.227666::

        Q_cyc = k_C(C) * k_DOD(DOD) * sqrt(FEC)                    [percent]
        k_C   = 0.0630 * C + 0.0971                                [C-rate in 1/h]
        k_DOD = 4.0253 * (DOD - 0.6)^3 + 1.0923                    [DOD in 0..1]

    Both papers fit constant-condition tests and continue them under changing conditions with
    the "virtual time" (virtual FEC) method. For a power law with exponent 1/2 that method has
    a closed form: d(Q^2) = k^2 dt, so Q = sqrt(sum k_i^2 dt_i). That turns the sequential
    continuation into a cumulative sum, which is what makes a year of 15-min data take
    milliseconds, and lets the online tracker and the batch function agree to rounding.

    The C-rate factor uses one throughput-weighted mean C-rate for the whole history
    (sum dSOC^2/dt / sum |dSOC|): the fit is on symmetric constant-current cycling, and a
    per-cycle rate would depend on how long the battery idles at a turning point, which the
    cell does not feel. Total fade is the sum of both terms, as in the papers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

GAS_CONSTANT_J_PER_MOL_K = 8.3144598
KELVIN_OFFSET = 273.15


@dataclass(frozen=True, slots=True)
class AgingParams:
    """Parameters of the capacity-fade model; defaults are the published Naumann values."""

    # Calendar, Naumann et al. 2018, J. Energy Storage 17 (capacity-loss fit).
    cal_k_ref_per_sqrt_s: float = 1.2571e-5
    cal_activation_energy_j_per_mol: float = 17126.0
    cal_ref_temp_c: float = 25.0
    cal_soc_cubic: float = 2.8575
    cal_soc_offset: float = 0.60225
    # Cycle, Naumann et al. 2020, J. Power Sources 451 (capacity-loss fit, in percent).
    cyc_crate_slope: float = 0.0630
    cyc_crate_offset: float = 0.0971
    cyc_dod_cubic: float = 4.0253
    cyc_dod_center: float = 0.6
    cyc_dod_offset: float = 1.0923


NAUMANN_SONY_LFP = AgingParams()


@dataclass(frozen=True, slots=True)
class Cycles:
    """Rainflow cycles as parallel arrays: range, count (1.0 or 0.5) and the sample indices of
    the two reversal points that bound the range."""

    ranges: FloatArray
    counts: FloatArray
    start_index: npt.NDArray[np.int64]
    end_index: npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class FadeResult:
    """Capacity fade of a history, as fractions of the initial capacity."""

    calendar_fade: float
    cycle_fade: float
    equivalent_full_cycles: float
    mean_c_rate_per_h: float

    @property
    def total_fade(self) -> float:
        return self.calendar_fade + self.cycle_fade

    @property
    def soh_pct(self) -> float:
        return max(0.0, 100.0 * (1.0 - self.total_fade))


def _reversals(series: Sequence[float] | npt.ArrayLike) -> tuple[list[float], list[int]]:
    x = np.asarray(series, dtype=np.float64).ravel()
    if x.size < 2:
        return [], []
    if not np.all(np.isfinite(x)):
        raise ValueError("rainflow input contains NaN or infinite values")
    # Runs of equal values are one point: a plateau is not a reversal in itself.
    keep = np.empty(x.size, dtype=bool)
    keep[0] = True
    np.not_equal(x[1:], x[:-1], out=keep[1:])
    idx = np.flatnonzero(keep)
    y = x[idx]
    if y.size == 1:
        # Constant series: both ends are reversals, giving one half cycle of range zero.
        return [float(y[0]), float(y[0])], [0, int(x.size - 1)]
    d = np.diff(y)
    turning = np.flatnonzero(d[:-1] * d[1:] < 0) + 1
    sel = np.concatenate(([0], turning, [y.size - 1]))
    return y[sel].tolist(), idx[sel].tolist()


def extract_cycles(series: Sequence[float] | npt.ArrayLike) -> Cycles:
    """Every rainflow cycle of `series` in the order ASTM E1049-85 5.4.4 finds them."""
    values, index = _reversals(series)
    ranges: list[float] = []
    counts: list[float] = []
    starts: list[int] = []
    ends: list[int] = []
    sv: list[float] = []
    si: list[int] = []
    for v, i in zip(values, index, strict=True):
        sv.append(v)
        si.append(i)
        while len(sv) >= 3:
            x_rng = abs(sv[-1] - sv[-2])
            y_rng = abs(sv[-2] - sv[-3])
            if x_rng < y_rng:
                break
            if len(sv) == 3:
                # Y contains the starting point: half cycle, drop the start.
                ranges.append(y_rng)
                counts.append(0.5)
                starts.append(si[0])
                ends.append(si[1])
                del sv[0], si[0]
            else:
                ranges.append(y_rng)
                counts.append(1.0)
                starts.append(si[-3])
                ends.append(si[-2])
                del sv[-3:-1], si[-3:-1]
    for k in range(len(sv) - 1):
        ranges.append(abs(sv[k] - sv[k + 1]))
        counts.append(0.5)
        starts.append(si[k])
        ends.append(si[k + 1])
    return Cycles(
        ranges=np.asarray(ranges, dtype=np.float64),
        counts=np.asarray(counts, dtype=np.float64),
        start_index=np.asarray(starts, dtype=np.int64),
        end_index=np.asarray(ends, dtype=np.int64),
    )


def count_cycles(series: Sequence[float] | npt.ArrayLike) -> list[tuple[float, float]]:
    """Rainflow count per ASTM E1049-85: sorted (range, count) pairs, half cycles as 0.5."""
    cycles = extract_cycles(series)
    totals: dict[float, float] = {}
    for rng, cnt in zip(cycles.ranges.tolist(), cycles.counts.tolist(), strict=True):
        totals[rng] = totals.get(rng, 0.0) + cnt
    return sorted(totals.items())


def calendar_stress_sq(
    temp_c: FloatArray | float, soc_frac: FloatArray | float, params: AgingParams
) -> FloatArray:
    """Square of the calendar rate k_T * k_SOC (p.u.^2 per second)."""
    t_k = np.asarray(temp_c, dtype=np.float64) + KELVIN_OFFSET
    t_ref_k = params.cal_ref_temp_c + KELVIN_OFFSET
    k_t = params.cal_k_ref_per_sqrt_s * np.exp(
        -params.cal_activation_energy_j_per_mol
        / GAS_CONSTANT_J_PER_MOL_K
        * (1.0 / t_k - 1.0 / t_ref_k)
    )
    soc = np.asarray(soc_frac, dtype=np.float64)
    k_soc = params.cal_soc_cubic * (soc - 0.5) ** 3 + params.cal_soc_offset
    out: FloatArray = (k_t * k_soc) ** 2
    return out


def dod_stress_sq(dod_frac: FloatArray | float, params: AgingParams) -> FloatArray:
    """Square of the depth-of-discharge factor k_DOD (dimensionless)."""
    d = np.asarray(dod_frac, dtype=np.float64)
    out: FloatArray = (
        params.cyc_dod_cubic * (d - params.cyc_dod_center) ** 3 + params.cyc_dod_offset
    ) ** 2
    return out


def crate_factor(c_rate_per_h: float, params: AgingParams) -> float:
    """k_C, in percent capacity per sqrt(FEC)."""
    return params.cyc_crate_slope * c_rate_per_h + params.cyc_crate_offset


def capacity_fade(
    soc_pct: Sequence[float] | npt.ArrayLike,
    temp_c: Sequence[float] | npt.ArrayLike | float,
    dt_s: float,
    params: AgingParams = NAUMANN_SONY_LFP,
) -> FadeResult:
    """Fade of a history sampled every `dt_s` seconds (SOC in percent, cell temperature in °C).

    The calendar term integrates k^2 over each interval by the trapezoid rule; the cycle term
    sums k_DOD^2 * depth * count over the rainflow cycles of the SOC series."""
    if dt_s <= 0:
        raise ValueError(f"dt_s must be positive, got {dt_s}")
    soc = np.asarray(soc_pct, dtype=np.float64).ravel() / 100.0
    temp = np.broadcast_to(np.asarray(temp_c, dtype=np.float64), soc.shape)
    if soc.size < 2:
        return FadeResult(0.0, 0.0, 0.0, 0.0)
    k2 = calendar_stress_sq(temp, soc, params)
    cal_sq = float(np.sum(k2[1:] + k2[:-1]) * 0.5 * dt_s)

    cycles = extract_cycles(soc)
    cyc_sum = float(np.sum(dod_stress_sq(cycles.ranges, params) * cycles.ranges * cycles.counts))
    efc = float(np.sum(cycles.ranges * cycles.counts))

    dsoc = np.diff(soc)
    abs_sum = float(np.sum(np.abs(dsoc)))
    dt_h = dt_s / 3600.0
    c_rate = float(np.sum(dsoc * dsoc)) / dt_h / abs_sum if abs_sum > 0 else 0.0
    return FadeResult(
        calendar_fade=math.sqrt(cal_sq),
        cycle_fade=crate_factor(c_rate, params) / 100.0 * math.sqrt(cyc_sum),
        equivalent_full_cycles=efc,
        mean_c_rate_per_h=c_rate,
    )


class DegradationTracker:
    """Online form of `capacity_fade`: feed one sample per step; the fade after the last sample
    equals `capacity_fade` over the same history (to rounding). Cost per step is constant
    except for the open rainflow residue, which stays a handful of points for real dispatch."""

    __slots__ = (
        "_abs_dsoc",
        "_cal_sq",
        "_closed_cyc",
        "_closed_efc",
        "_direction",
        "_last",
        "_last_k2",
        "_params",
        "_sq_dsoc_per_h",
        "_stack",
    )

    def __init__(
        self,
        soc_pct: float,
        temp_c: float,
        params: AgingParams = NAUMANN_SONY_LFP,
        *,
        prior_age_days: float = 0.0,
        prior_full_cycles: float = 0.0,
    ) -> None:
        """Start at `soc_pct`/`temp_c`. A used battery is given as a prior history at the
        papers' reference conditions (25 °C, 50 % SOC storage; full 0.5C cycles): the sqrt laws
        make the first hours of a new cell age fastest, so a simulation of a battery in service
        must not start from zero or its marginal wear would be wildly overstated."""
        if prior_age_days < 0 or prior_full_cycles < 0:
            raise ValueError("prior age and cycles must not be negative")
        self._params = params
        first = float(soc_pct) / 100.0
        self._stack: list[float] = [first]
        self._last = first
        self._direction = 0.0
        self._last_k2 = float(calendar_stress_sq(temp_c, first, params))
        ref_k2 = float(calendar_stress_sq(params.cal_ref_temp_c, 0.5, params))
        self._cal_sq = ref_k2 * prior_age_days * 86400.0
        self._closed_cyc = prior_full_cycles * self._dod_sq(1.0)
        self._closed_efc = prior_full_cycles
        self._abs_dsoc = 2.0 * prior_full_cycles
        self._sq_dsoc_per_h = 0.5 * self._abs_dsoc

    def update(self, soc_pct: float, temp_c: float, dt_s: float) -> None:
        """Add the sample that ends an interval of `dt_s` seconds."""
        p = self._params
        soc = float(soc_pct) / 100.0
        t_k = float(temp_c) + KELVIN_OFFSET
        k_t = p.cal_k_ref_per_sqrt_s * math.exp(
            -p.cal_activation_energy_j_per_mol
            / GAS_CONSTANT_J_PER_MOL_K
            * (1.0 / t_k - 1.0 / (p.cal_ref_temp_c + KELVIN_OFFSET))
        )
        k2 = (k_t * (p.cal_soc_cubic * (soc - 0.5) ** 3 + p.cal_soc_offset)) ** 2
        self._cal_sq += 0.5 * (k2 + self._last_k2) * dt_s
        self._last_k2 = k2

        d = soc - self._last
        if d == 0.0:
            return
        self._abs_dsoc += abs(d)
        self._sq_dsoc_per_h += d * d / (dt_s / 3600.0)
        direction = 1.0 if d > 0 else -1.0
        if self._direction != 0.0 and direction != self._direction:
            self._push(self._last)
        self._last = soc
        self._direction = direction

    def rebase(self, soc_pct: float) -> None:
        """Move to `soc_pct` without counting the jump as cycling: a scenario set the SOC by
        hand. The open rainflow residue is closed off; what it held is not counted."""
        soc = float(soc_pct) / 100.0
        self._stack = [soc]
        self._last = soc
        self._direction = 0.0

    def _push(self, value: float) -> None:
        sv = self._stack
        sv.append(value)
        while len(sv) >= 3:
            x_rng = abs(sv[-1] - sv[-2])
            y_rng = abs(sv[-2] - sv[-3])
            if x_rng < y_rng:
                break
            count = 0.5 if len(sv) == 3 else 1.0
            self._closed_cyc += count * y_rng * self._dod_sq(y_rng)
            self._closed_efc += count * y_rng
            if count == 0.5:
                del sv[0]
            else:
                del sv[-3:-1]

    def _dod_sq(self, dod: float) -> float:
        p = self._params
        return float((p.cyc_dod_cubic * (dod - p.cyc_dod_center) ** 3 + p.cyc_dod_offset) ** 2)

    def _with_residue(self) -> tuple[float, float]:
        """Cycle sums if the history ended now (open residue counted as half cycles)."""
        cyc = self._closed_cyc
        efc = self._closed_efc
        sv = [*self._stack, self._last]
        while len(sv) >= 3:
            x_rng = abs(sv[-1] - sv[-2])
            y_rng = abs(sv[-2] - sv[-3])
            if x_rng < y_rng:
                break
            count = 0.5 if len(sv) == 3 else 1.0
            cyc += count * y_rng * self._dod_sq(y_rng)
            efc += count * y_rng
            if count == 0.5:
                del sv[0]
            else:
                del sv[-3:-1]
        for a, b in pairwise(sv):
            r = abs(a - b)
            cyc += 0.5 * r * self._dod_sq(r)
            efc += 0.5 * r
        return cyc, efc

    def result(self) -> FadeResult:
        cyc, efc = self._with_residue()
        c_rate = self._sq_dsoc_per_h / self._abs_dsoc if self._abs_dsoc > 0 else 0.0
        return FadeResult(
            calendar_fade=math.sqrt(self._cal_sq),
            cycle_fade=float(crate_factor(c_rate, self._params) / 100.0 * math.sqrt(cyc)),
            equivalent_full_cycles=float(efc),
            mean_c_rate_per_h=float(c_rate),
        )


def cycle_wear_cost_per_mwh(
    replacement_cost_per_kwh: float,
    *,
    depth: float = 0.8,
    cycles_per_day: float = 1.0,
    temp_c: float = 25.0,
    c_rate_per_h: float = 0.5,
    end_of_life_fade: float = 0.2,
    params: AgingParams = NAUMANN_SONY_LFP,
) -> float:
    """What cycling costs, per MWh of cell throughput (energy in plus energy out), in the
    currency of `replacement_cost_per_kwh`.

    A battery run `cycles_per_day` full cycles of `depth` at `temp_c` (mid SOC at rest) loses
    capacity to calendar ageing and to cycling until `end_of_life_fade`; the share of the fade
    that cycling caused, times the replacement cost, spread over the cell throughput of that
    life, is the cost of one more MWh through the cells. Calendar ageing happens whether the
    battery works or not, so it is not charged to dispatch."""
    if replacement_cost_per_kwh < 0 or not 0 < depth <= 1 or cycles_per_day <= 0:
        raise ValueError("need cost >= 0, 0 < depth <= 1 and cycles_per_day > 0")
    cal_sq_per_day = float(calendar_stress_sq(temp_c, 0.5, params)) * 86_400.0
    k_cyc = crate_factor(c_rate_per_h, params) / 100.0
    cyc_sq_per_day = float(dod_stress_sq(depth, params)) * depth * cycles_per_day

    def fade(days: float) -> tuple[float, float]:
        return math.sqrt(cal_sq_per_day * days), k_cyc * math.sqrt(cyc_sq_per_day * days)

    low, high = 0.0, 365.0 * 100
    for _ in range(80):  # bisection on the day the total fade reaches end of life
        mid = (low + high) / 2
        if sum(fade(mid)) < end_of_life_fade:
            low = mid
        else:
            high = mid
    calendar, cycling = fade(high)
    throughput_mwh_per_kwh = 2.0 * depth * cycles_per_day * high / 1000.0
    cycle_share = cycling / (calendar + cycling)
    return replacement_cost_per_kwh * cycle_share / throughput_mwh_per_kwh
