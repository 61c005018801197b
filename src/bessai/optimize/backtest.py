"""Day-ahead rolling back-test on real prices.

Protocol, for each market day (midnight to midnight in the series' local time zone):

1. forecast the day's prices from data up to the end of the previous day;
2. plan the day from the SOC carried over (the optimizer with a terminal target, or the rule
   engine);
3. execute the plan through :func:`settle` (the settlement hook) and book it at real prices.

The same run computes the two yardsticks: the daily perfect-foresight plan under the same
constraints (the ``perfect`` forecaster) and one optimum over the whole period. Capture ratios
are net revenues (after wear) divided by theirs.

Settlement is a separate function: by default the plan is executed by the plant's battery
model (:func:`settle_plant`: charge taper near full, discharge taper near empty, self-discharge,
the optimizer's efficiencies), so revenue accounts for what a real battery delivers;
:func:`settle_ideal` executes it on an ideal battery. Equivalent full cycles are counted by
rainflow (ASTM E1049-85) over the settled SOC.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd

from bessai.errors import ConfigError
from bessai.market.prices import PriceSeries
from bessai.optimize.model import (
    Bands,
    Battery,
    FloatArray,
    Risk,
    Schedule,
    cell_throughput_kwh,
    optimize,
)
from bessai.optimize.rules import rule_schedule
from bessai.plant.battery import Battery as CellBattery
from bessai.plant.battery import BatteryConfig as CellConfig
from bessai.plant.battery import ci_container_1mw_4mwh, luna2000
from bessai.plant.degradation import count_cycles

# --------------------------------------------------------------------------- settlement


@dataclass(frozen=True, slots=True)
class Settlement:
    """What the battery actually did with a plan, booked at real prices."""

    charge_kw: FloatArray
    discharge_kw: FloatArray
    soc_pct: FloatArray  # end of each step
    revenue: float
    degradation_cost: float
    cell_throughput_kwh: float

    @property
    def soc_end_pct(self) -> float:
        return float(self.soc_pct[-1])


class Settle(Protocol):
    def __call__(
        self,
        charge_kw: FloatArray,
        discharge_kw: FloatArray,
        prices: FloatArray,
        step_h: float,
        battery: Battery,
        soc_initial_pct: float,
    ) -> Settlement: ...


def _book(
    charge_kw: FloatArray,
    discharge_kw: FloatArray,
    soc_pct: FloatArray,
    prices: FloatArray,
    step_h: float,
    battery: Battery,
) -> Settlement:
    """Book what the battery did at the real prices, with its wear."""
    cells = cell_throughput_kwh(charge_kw, discharge_kw, step_h, battery)
    return Settlement(
        charge_kw=charge_kw,
        discharge_kw=discharge_kw,
        soc_pct=soc_pct,
        revenue=float(np.sum(prices * (discharge_kw - charge_kw)) * step_h / 1000.0),
        degradation_cost=battery.degradation_per_mwh * cells / 1000.0,
        cell_throughput_kwh=cells,
    )


def settle_ideal(
    charge_kw: FloatArray,
    discharge_kw: FloatArray,
    prices: FloatArray,
    step_h: float,
    battery: Battery,
    soc_initial_pct: float,
) -> Settlement:
    """An ideal battery with the optimizer's efficiencies executes the plan, each step cut to
    the power limits and to what the SOC limits allow (as the safety guard would)."""
    b = battery
    e_min, e_max = b.energy_kwh(b.soc_min_pct), b.energy_kwh(b.soc_max_pct)
    n = len(prices)
    c = np.zeros(n)
    d = np.zeros(n)
    soc = np.zeros(n)
    level = b.energy_kwh(soc_initial_pct)
    for t in range(n):
        want_c = min(max(float(charge_kw[t]), 0.0), b.p_charge_kw)
        want_d = min(max(float(discharge_kw[t]), 0.0), b.p_discharge_kw)
        if want_c > 0:
            c[t] = min(want_c, max(0.0, e_max - level) / (b.eta_charge * step_h))
        elif want_d > 0:
            d[t] = min(want_d, max(0.0, level - e_min) * b.eta_discharge / step_h)
        level += c[t] * b.eta_charge * step_h - d[t] * step_h / b.eta_discharge
        soc[t] = level / b.capacity_kwh * 100.0
    return _book(c, d, soc, prices, step_h, b)


#: Cell temperature assumed in settlement: a conditioned container or a sheltered home pack.
SETTLE_TEMP_C = 25.0


def plant_battery_config(battery: Battery) -> CellConfig:
    """The plant model of a battery of this size: the container preset for C&I sizes, the
    LUNA2000 preset for home sizes, with the optimizer's capacity, powers and efficiencies.
    Auxiliary consumption is left out: sites meter it apart from the arbitrage."""
    if battery.capacity_kwh >= 100.0:
        base = ci_container_1mw_4mwh()
    else:
        base = luna2000(max(1, round(battery.capacity_kwh / 5.0)))
    return dataclasses.replace(
        base,
        name=f"back-test {battery.capacity_kwh:g} kWh",
        nameplate_energy_kwh=battery.capacity_kwh,
        usable_fraction=1.0,
        max_charge_power_w=battery.p_charge_kw * 1000.0,
        max_discharge_power_w=battery.p_discharge_kw * 1000.0,
        charge_efficiency=battery.eta_charge,
        discharge_efficiency=battery.eta_discharge,
        aux_power_w=0.0,
    )


def settle_plant(
    charge_kw: FloatArray,
    discharge_kw: FloatArray,
    prices: FloatArray,
    step_h: float,
    battery: Battery,
    soc_initial_pct: float,
) -> Settlement:
    """The plant's battery model executes the plan: power tapers near full and near empty, the
    cells self-discharge, and each step is cut to the SOC limits as the safety guard would."""
    b = battery
    cell = CellBattery(plant_battery_config(b), soc_initial_pct)
    dt_s = step_h * 3600.0
    n = len(prices)
    c = np.zeros(n)
    d = np.zeros(n)
    soc = np.zeros(n)
    for t in range(n):
        want_kw = float(charge_kw[t]) - float(discharge_kw[t])
        level_kwh = cell.energy_kwh
        if want_kw > 0:
            room_kwh = max(0.0, b.energy_kwh(b.soc_max_pct) - level_kwh)
            want_kw = min(want_kw, room_kwh / (b.eta_charge * step_h))
        elif want_kw < 0:
            room_kwh = max(0.0, level_kwh - b.energy_kwh(b.soc_min_pct))
            want_kw = -min(-want_kw, room_kwh * b.eta_discharge / step_h)
        power_kw = cell.step(want_kw * 1000.0, dt_s, SETTLE_TEMP_C) / 1000.0
        c[t] = max(power_kw, 0.0)
        d[t] = max(-power_kw, 0.0)
        soc[t] = cell.soc_pct
    return _book(c, d, soc, prices, step_h, b)


SETTLEMENTS: dict[str, Settle] = {"plant": settle_plant, "ideal": settle_ideal}


# --------------------------------------------------------------------------- forecasters


# A forecaster sees the history (prices before the day, UTC index) and the day's step starts,
# and returns one price per step.
Forecaster = Callable[[pd.Series, pd.DatetimeIndex, str], FloatArray]
#: Bands around a forecast: (history, target steps, tz, the point planned on) -> Bands.
BandForecaster = Callable[[pd.Series, pd.DatetimeIndex, str, FloatArray], Bands]


def _slot_keys(index: pd.DatetimeIndex, tz: str) -> npt.NDArray[np.int64]:
    local = index.tz_convert(tz)
    return np.asarray(local.hour * 60 + local.minute, dtype=np.int64)


def _profile(
    history: pd.Series, days: int, target: pd.DatetimeIndex, tz: str, quantile: float | None = None
) -> FloatArray:
    """Mean (or ``quantile``) price per local time of day over the last ``days`` local days of
    history, laid on the target steps. A slot the history lacks (the hour DST skipped) takes
    the previous slot."""
    if history.empty:
        raise ConfigError("back-test: a forecaster needs at least one day of history")
    hist_index = history.index
    assert isinstance(hist_index, pd.DatetimeIndex)
    step_s = (hist_index[1] - hist_index[0]).total_seconds() if len(hist_index) > 1 else 3600
    # Only the tail can hold the last `days` local days (plus slack for a 25-hour day).
    tail = history.iloc[-int((days + 1) * 86400 / step_s) - 2 :]
    tail_index = tail.index
    assert isinstance(tail_index, pd.DatetimeIndex)
    local_dates = tail_index.tz_convert(tz).date
    last_days = sorted(set(local_dates))[-days:]
    recent = tail[np.isin(local_dates, last_days)]
    recent_index = recent.index
    assert isinstance(recent_index, pd.DatetimeIndex)
    groups = recent.groupby(_slot_keys(recent_index, tz))
    stats = groups.mean() if quantile is None else groups.quantile(quantile)
    keys = _slot_keys(target, tz)
    out = pd.Series(keys).map(stats).ffill().bfill()
    return out.to_numpy(dtype=np.float64)


def empirical_bands(
    history: pd.Series, target: pd.DatetimeIndex, tz: str, point: FloatArray
) -> Bands:
    """p10/p90 of the last seven days at the same local time of day around a point forecast
    (kept inside the band): the naive forecasters' uncertainty, for the risk-aware mode."""
    p10 = _profile(history, 7, target, tz, quantile=0.1)
    p90 = _profile(history, 7, target, tz, quantile=0.9)
    return Bands(p10=np.minimum(p10, point), p50=point, p90=np.maximum(p90, point))


def persistence(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> FloatArray:
    """Yesterday's price at the same local time of day."""
    return _profile(history, 1, target, tz)


def week_mean(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> FloatArray:
    """Mean of the last seven days at the same local time of day."""
    return _profile(history, 7, target, tz)


# `perfect` and `rule` are handled by the back-test itself: perfect sees the day's real prices;
# rule runs the rule engine on the week-mean forecast. The market forecasters register here.
FORECASTERS: dict[str, Forecaster] = {"persistence": persistence, "week-mean": week_mean}
STRATEGIES: tuple[str, ...] = ("perfect", "persistence", "week-mean", "rule")


# --------------------------------------------------------------------------- back-test


@dataclass(frozen=True, slots=True)
class DayResult:
    day: date
    revenue: float
    degradation_cost: float
    perfect_net: float
    soc_end_pct: float

    @property
    def net_revenue(self) -> float:
        return self.revenue - self.degradation_cost


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """A back-test's totals and the executed schedule (for plotting)."""

    forecaster: str
    node: str
    unit: str
    timezone: str
    first_day: date
    last_day: date
    battery: Battery
    revenue: float
    degradation_cost: float
    perfect_daily_net: float
    whole_period_net: float
    cell_throughput_kwh: float
    index: pd.DatetimeIndex
    prices: FloatArray
    forecast: FloatArray
    charge_kw: FloatArray
    discharge_kw: FloatArray
    soc_pct: FloatArray
    days: tuple[DayResult, ...]
    soc_initial_pct: float
    settlement: str

    @property
    def net_revenue(self) -> float:
        return self.revenue - self.degradation_cost

    @property
    def capture_daily(self) -> float:
        """Net revenue over the daily perfect-foresight net revenue."""
        return _ratio(self.net_revenue, self.perfect_daily_net)

    @property
    def capture_period(self) -> float:
        """Net revenue over the whole-period optimum."""
        return _ratio(self.net_revenue, self.whole_period_net)

    @property
    def equivalent_full_cycles(self) -> float:
        """Rainflow (ASTM E1049-85) over the settled SOC: the sum of depth x count, a full
        0-100-0 % cycle counting one."""
        series = np.concatenate([[self.soc_initial_pct], self.soc_pct])
        return sum(rng * cnt for rng, cnt in count_cycles(series)) / 100.0

    def summary(self) -> dict[str, object]:
        return {
            "forecaster": self.forecaster,
            "node": self.node,
            "from": self.first_day.isoformat(),
            "to": self.last_day.isoformat(),
            "days": len(self.days),
            "currency": self.unit.split("/")[0],
            "revenue": round(self.revenue, 2),
            "degradation_cost": round(self.degradation_cost, 2),
            "net_revenue": round(self.net_revenue, 2),
            "perfect_daily_net": round(self.perfect_daily_net, 2),
            "whole_period_net": round(self.whole_period_net, 2),
            "capture_vs_daily_perfect": round(self.capture_daily, 4),
            "capture_vs_whole_period": round(self.capture_period, 4),
            "equivalent_full_cycles": round(self.equivalent_full_cycles, 2),
            "settlement": self.settlement,
        }


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.nan


def market_days(series: PriceSeries) -> list[tuple[date, int, int]]:
    """(local date, first step, end step) of every complete local day in the series."""
    tz = ZoneInfo(series.timezone)
    local_dates = series.index.tz_convert(series.timezone).date
    codes, uniques = pd.factorize(local_dates)
    out: list[tuple[date, int, int]] = []
    bounds = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(codes)]])
    for s, e in zip(starts, ends, strict=True):
        day: date = uniques[codes[s]]
        day_start = datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
        nxt = pd.Timestamp(day) + pd.Timedelta(days=1)
        day_end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp()
        expected = round((day_end - day_start) / series.step.total_seconds())
        if e - s == expected:
            out.append((day, int(s), int(e)))
    return out


def backtest(
    series: PriceSeries,
    forecaster: str,
    battery: Battery,
    *,
    soc_initial_pct: float = 50.0,
    soc_final_pct: float | None = None,
    first_day: date | None = None,
    last_day: date | None = None,
    settle: Settle = settle_plant,
    on_day: Callable[[int, int], None] | None = None,
    forecasters: dict[str, Forecaster] | None = None,
    risk: Risk | None = None,
    band_forecasters: dict[str, BandForecaster] | None = None,
) -> BacktestResult:
    """Run the day-ahead rolling back-test of one forecaster over ``[first_day, last_day]``
    (local dates, inclusive; default: from the second complete day, so every forecaster has
    history, to the last). Each day's plan must end at ``soc_final_pct`` (default: the
    initial SOC); the rule engine has no terminal target. With ``risk``, forecast strategies
    get p10/p90 bands and plan in the risk-aware mode (the rule engine applies
    ``min_confidence`` and ``min_spread`` as its own filters): the forecaster's own bands from
    ``band_forecasters`` (a trained model's calibrated ones), else the empirical ones
    (:func:`empirical_bands`)."""
    registry = {**FORECASTERS, **(forecasters or {})}
    if forecaster not in registry and forecaster not in ("perfect", "rule"):
        known = ", ".join(sorted({*registry, "perfect", "rule"}))
        raise ConfigError(f"back-test: unknown forecaster {forecaster!r}; choose one of {known}")
    target = soc_initial_pct if soc_final_pct is None else soc_final_pct
    all_days = market_days(series)
    if len(all_days) < 2:
        raise ConfigError("back-test: the price series has fewer than two complete days")
    lo = first_day or all_days[1][0]
    hi = last_day or all_days[-1][0]
    if lo <= all_days[0][0]:
        lo = all_days[1][0]  # the first day has no history to forecast from
    days = [d for d in all_days if lo <= d[0] <= hi]
    if not days:
        raise ConfigError(f"back-test: no complete market day between {lo} and {hi}")
    prices = series.values
    dt = series.step_h
    index = series.index
    tz = series.timezone
    first_step, end_step = days[0][1], days[-1][2]
    n = end_step - first_step

    fc = np.zeros(n)
    ch = np.zeros(n)
    dis = np.zeros(n)
    soc = np.zeros(n)
    results: list[DayResult] = []
    revenue = wear = cells = perfect_net = 0.0
    soc_now = soc_perfect = soc_initial_pct
    for k, (day, s, e) in enumerate(days):
        actual = prices[s:e]
        steps = index[s:e]
        perfect_plan = optimize(
            actual, dt, battery, soc_initial_pct=soc_perfect, soc_final_pct=target
        )
        perfect = settle(
            perfect_plan.charge_kw, perfect_plan.discharge_kw, actual, dt, battery, soc_perfect
        )
        soc_perfect = perfect.soc_end_pct
        perfect_net += perfect.revenue - perfect.degradation_cost
        if forecaster == "perfect":
            forecast, done = actual, perfect
        else:
            history = series.prices.iloc[:s]
            point = registry["week-mean" if forecaster == "rule" else forecaster]
            forecast = point(history, steps, tz)
            band_fn = (band_forecasters or {}).get(forecaster, empirical_bands)
            bands = None if risk is None else band_fn(history, steps, tz, forecast)
            if forecaster == "rule":
                plan: Schedule = rule_schedule(
                    forecast,
                    dt,
                    battery,
                    soc_initial_pct=soc_now,
                    confidence=None if bands is None else bands.confidence(),
                    min_confidence=0.0 if risk is None else risk.min_confidence,
                    min_spread=0.0 if risk is None else risk.min_spread,
                )
            else:
                plan = optimize(
                    forecast,
                    dt,
                    battery,
                    soc_initial_pct=soc_now,
                    soc_final_pct=target,
                    bands=bands,
                    risk=risk,
                )
            done = settle(plan.charge_kw, plan.discharge_kw, actual, dt, battery, soc_now)
        soc_now = done.soc_end_pct
        i, j = s - first_step, e - first_step
        fc[i:j] = forecast
        ch[i:j] = done.charge_kw
        dis[i:j] = done.discharge_kw
        soc[i:j] = done.soc_pct
        revenue += done.revenue
        wear += done.degradation_cost
        cells += done.cell_throughput_kwh
        results.append(
            DayResult(
                day,
                done.revenue,
                done.degradation_cost,
                perfect.revenue - perfect.degradation_cost,
                done.soc_end_pct,
            )
        )
        if on_day is not None:
            on_day(k + 1, len(days))

    whole_prices = prices[first_step:end_step]
    whole_plan = optimize(
        whole_prices, dt, battery, soc_initial_pct=soc_initial_pct, soc_final_pct=target
    )
    whole = settle(
        whole_plan.charge_kw, whole_plan.discharge_kw, whole_prices, dt, battery, soc_initial_pct
    )
    return BacktestResult(
        forecaster=forecaster,
        node=series.node,
        unit=series.unit,
        timezone=series.timezone,
        first_day=days[0][0],
        last_day=days[-1][0],
        battery=battery,
        revenue=revenue,
        degradation_cost=wear,
        perfect_daily_net=perfect_net,
        whole_period_net=whole.revenue - whole.degradation_cost,
        cell_throughput_kwh=cells,
        index=index[first_step:end_step],
        prices=whole_prices,
        forecast=fc,
        charge_kw=ch,
        discharge_kw=dis,
        soc_pct=soc,
        days=tuple(results),
        soc_initial_pct=soc_initial_pct,
        settlement=next((k for k, v in SETTLEMENTS.items() if v is settle), "custom"),
    )


def summarise(results: Sequence[BacktestResult]) -> list[dict[str, object]]:
    return [r.summary() for r in results]
