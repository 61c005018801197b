"""Day-ahead rolling back-test on real prices.

Protocol, for each market day (midnight to midnight in the series' local time zone):

1. forecast the day's prices from data up to the end of the previous day;
2. plan the day from the SOC carried over (the optimizer with a terminal target, or the rule
   engine);
3. execute the plan through a settlement (:mod:`.settle`) and book it at real prices.

The same run computes the two yardsticks: the daily perfect-foresight plan under the same
constraints (the ``perfect`` forecaster) and one optimum over the whole period. Capture ratios
are net revenues (after wear) divided by theirs. Equivalent full cycles are counted by rainflow
(ASTM E1049-85) over the settled SOC.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from bessai.analysis.intraday import Replan, Replanner
from bessai.analysis.result import BacktestResult, DayResult
from bessai.analysis.settle import SETTLEMENTS, Settle, Settlement, settle_plant
from bessai.errors import ConfigError
from bessai.market.bands import Bands
from bessai.market.baselines import FORECASTERS, BandForecaster, Forecaster, empirical_bands
from bessai.market.days import Day, Excluded, describe, market_days, scorable_days
from bessai.market.prices import PriceSeries
from bessai.optimize import CarbonPrice, Risk, Schedule, StorageSpec, optimize
from bessai.optimize.horizon import PlanSettings
from bessai.optimize.rules import rule_schedule
from bessai.optimize.storage import FloatArray

# `perfect` and `rule` are handled by the back-test itself: perfect sees the day's real prices;
# rule runs the rule engine on the week-mean forecast. The market forecasters come from
# `bessai.market.baselines.FORECASTERS` or through `forecasters=`.
STRATEGIES: tuple[str, ...] = ("perfect", "persistence", "week-mean", "rule")


@dataclass(frozen=True, slots=True)
class CarbonTerm:
    """The carbon-aware objective of a back-test: ``price_per_t`` on the emission factor that
    ``factor_of(prices, steps)`` (g/kWh) gives for the prices a plan is made on (the forecast,
    or the real prices for perfect foresight and the yardsticks)."""

    price_per_t: float
    factor_of: Callable[[FloatArray, pd.DatetimeIndex], FloatArray]

    def price(self, prices: FloatArray, steps: pd.DatetimeIndex) -> CarbonPrice:
        return CarbonPrice(self.price_per_t, self.factor_of(prices, steps))


@dataclass(frozen=True, slots=True)
class Strategy:
    """How a day is forecast and planned: ``point`` None for perfect foresight; ``rule`` plans
    with the rule engine; ``bands`` (used only with ``risk``) gives the forecast's quantiles."""

    name: str
    point: Forecaster | None
    bands: BandForecaster
    risk: Risk | None
    rule: bool = False

    def plan(
        self,
        forecast: FloatArray,
        bands: Bands | None,
        storage: StorageSpec,
        soc: SocTarget,
        carbon: CarbonPrice | None = None,
    ) -> Schedule:
        risk = self.risk
        if self.rule:
            return rule_schedule(
                forecast,
                soc.step_h,
                storage,
                soc_initial_pct=soc.now_pct,
                confidence=None if bands is None else bands.confidence(),
                min_confidence=0.0 if risk is None else risk.min_confidence,
                min_spread=0.0 if risk is None else risk.min_spread,
            )
        return optimize(
            forecast,
            soc.step_h,
            storage,
            soc_initial_pct=soc.now_pct,
            soc_final_pct=soc.final_pct,
            bands=bands,
            risk=risk,
            carbon=carbon,
        )


@dataclass(frozen=True, slots=True)
class SocTarget:
    """The SOC a day's plan starts from and the minimum it must end at, and the step length."""

    now_pct: float
    final_pct: float
    step_h: float


def strategy_of(
    name: str,
    forecasters: dict[str, Forecaster] | None,
    band_forecasters: dict[str, BandForecaster] | None,
    risk: Risk | None,
) -> Strategy:
    """The strategy called ``name``: perfect, rule, or a point forecaster (with its bands, the
    empirical ones by default)."""
    registry = {**FORECASTERS, **(forecasters or {})}
    if name not in registry and name not in ("perfect", "rule"):
        known = ", ".join(sorted({*registry, "perfect", "rule"}))
        raise ConfigError(f"back-test: unknown forecaster {name!r}; choose one of {known}")
    bands = (band_forecasters or {}).get(name, empirical_bands)
    if name == "perfect":
        return Strategy(name, None, bands, risk)
    point = registry["week-mean" if name == "rule" else name]
    return Strategy(name, point, bands, risk, rule=name == "rule")


def _first_with_history(series: PriceSeries, days: list[Day], history_h: float) -> date:
    """The first day with ``history_h`` hours of prices before it."""
    need = pd.Timedelta(hours=history_h)
    for d, s, _ in days:
        if series.index[s] - series.index[0] >= need:
            return d
    raise ConfigError(
        f"back-test: the forecasts read the {history_h:g} h before each day, and no complete "
        f"day of the prices has that much before it"
    )


def backtest_days(
    series: PriceSeries,
    first_day: date | None,
    last_day: date | None,
    min_history_h: float | None = None,
) -> tuple[list[Day], list[Excluded]]:
    """The market days in ``[first_day, last_day]`` that can be scored (default: from the second
    day of the series, so every forecaster has history, to the last), and the days in that
    period left out because of a gap in the prices (:func:`bessai.market.days.scorable_days`).
    With ``min_history_h`` the period starts no earlier than the first day with that many hours
    of prices before it; a ``first_day`` before it is an error naming the day that works."""
    all_days = market_days(series)
    if len(all_days) < 2:
        raise ConfigError("back-test: the price series has fewer than two complete days")
    kept, excluded = scorable_days(series)
    earliest = all_days[1][0]  # the first day has no history to forecast from
    if min_history_h is not None:
        earliest = max(earliest, _first_with_history(series, all_days, min_history_h))
        if first_day is not None and first_day < earliest:
            start = series.index[0].tz_convert(series.timezone)
            raise ConfigError(
                f"--from {first_day}: the forecasts read the {min_history_h:g} h before each "
                f"day and the prices start {start:%Y-%m-%d %H:%M} ({series.timezone}); the "
                f"first day with that much history is {earliest}: use --from {earliest} or later"
            )
    lo = max(first_day or earliest, earliest)
    hi = last_day or all_days[-1][0]
    days = [d for d in kept if lo <= d[0] <= hi]
    inside = [
        Excluded(max(x.first, lo), min(x.last, hi), x.reason)
        for x in excluded
        if x.last >= lo and x.first <= hi
    ]
    if not days:
        left_out = f"; left out: {describe(inside)}" if inside else ""
        raise ConfigError(f"back-test: no complete market day between {lo} and {hi}{left_out}")
    return days, inside


def _segments(days: list[Day]) -> list[tuple[int, int]]:
    """(first step, end step) of each run of consecutive scored days."""
    out: list[tuple[int, int]] = []
    for _, s, e in days:
        if out and out[-1][1] == s:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


@dataclass(slots=True)
class RollingRun:
    """The back-test in progress: what was executed so far and the SOC carried over."""

    series: PriceSeries
    storage: StorageSpec
    settle: Settle
    days: list[Day]
    excluded: list[Excluded]
    soc_initial_pct: float
    soc_final_pct: float
    carbon: CarbonTerm | None = None
    replan: Replan | None = None
    soc_now: float = 0.0
    soc_perfect: float = 0.0
    booked_end: int = 0  # end of the last booked day, in steps from the first day
    totals: dict[str, float] = field(default_factory=dict)
    results: list[DayResult] = field(default_factory=list)
    arrays: dict[str, FloatArray] = field(default_factory=dict)
    values: FloatArray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self.values = self.series.values
        self.soc_now = self.soc_perfect = self.soc_initial_pct
        n = self.days[-1][2] - self.days[0][1]
        self.arrays = {k: np.zeros(n) for k in ("charge", "discharge", "soc")}
        # Days left out have no forecast; the battery idles through them at its carried SOC.
        self.arrays["forecast"] = np.full(n, np.nan)
        self.totals = dict.fromkeys(("revenue", "wear", "cells", "perfect_net"), 0.0)

    def target(self, soc_now: float) -> SocTarget:
        return SocTarget(soc_now, self.soc_final_pct, self.series.step_h)

    def co2(self, prices: FloatArray, s: int, e: int) -> CarbonPrice | None:
        """The carbon term of a plan made on ``prices`` for steps [s, e), if any."""
        if self.carbon is None:
            return None
        return self.carbon.price(prices, self.series.index[s:e])

    def _execute(self, plan: Schedule, actual: FloatArray, soc_pct: float) -> Settlement:
        dt = self.series.step_h
        return self.settle(plan.charge_kw, plan.discharge_kw, actual, dt, self.storage, soc_pct)

    def perfect_day(self, day: Day) -> Settlement:
        """The day's perfect-foresight plan, executed from its own carried SOC and counted."""
        _, s, e = day
        actual = self.values[s:e]
        perfect_plan = optimize(
            actual,
            self.series.step_h,
            self.storage,
            soc_initial_pct=self.soc_perfect,
            soc_final_pct=self.soc_final_pct,
            carbon=self.co2(actual, s, e),
        )
        perfect = self._execute(perfect_plan, actual, self.soc_perfect)
        self.soc_perfect = perfect.soc_end_pct
        self.totals["perfect_net"] += perfect.revenue - perfect.degradation_cost
        return perfect

    def day(self, day: Day, strategy: Strategy) -> None:
        """Forecast, plan, execute and book one market day, beside its perfect foresight."""
        _, s, e = day
        actual = self.values[s:e]
        perfect = self.perfect_day(day)
        if strategy.point is None:
            forecast, done = actual, perfect
        else:
            if self.replan is not None:
                done, forecast = self._replanner(strategy).day(s, e, self.soc_now)
                self.book(day, forecast, done, perfect)
                return
            history = self.series.prices.iloc[:s]
            steps, tz = self.series.index[s:e], self.series.timezone
            forecast = strategy.point(history, steps, tz)
            bands = None if strategy.risk is None else strategy.bands(history, steps, tz, forecast)
            carbon = self.co2(forecast, s, e)
            plan = strategy.plan(forecast, bands, self.storage, self.target(self.soc_now), carbon)
            done = self._execute(plan, actual, self.soc_now)
        self.book(day, forecast, done, perfect)

    def _replanner(self, strategy: Strategy) -> Replanner:
        """The strategy re-planned during the day by the gateway's planning step."""
        assert self.replan is not None
        assert strategy.point is not None
        if strategy.rule:
            raise ConfigError("back-test: the rule engine plans once a day; no --replan-every-h")
        if self.carbon is not None:
            raise ConfigError("back-test: carbon-aware plans are made once a day; no re-planning")
        bands = strategy.bands if strategy.risk is not None else None
        base = PlanSettings(self.storage, self.series.step_h, strategy.risk)
        how = (self.replan, self.settle, self.soc_final_pct)
        return Replanner.of(self.series, strategy.point, bands, base, how)

    def book(self, day: Day, forecast: FloatArray, done: Settlement, perfect: Settlement) -> None:
        """Count one executed day beside its perfect foresight, and carry its SOC over."""
        i, j = day[1] - self.days[0][1], day[2] - self.days[0][1]
        # Through days left out since the last booked day the battery idled at its SOC.
        self.arrays["soc"][self.booked_end : i] = self.soc_now
        self.booked_end = j
        self.soc_now = done.soc_end_pct
        self.arrays["forecast"][i:j] = forecast
        self.arrays["charge"][i:j] = done.charge_kw
        self.arrays["discharge"][i:j] = done.discharge_kw
        self.arrays["soc"][i:j] = done.soc_pct
        self.totals["revenue"] += done.revenue
        self.totals["wear"] += done.degradation_cost
        self.totals["cells"] += done.cell_throughput_kwh
        perfect_net = perfect.revenue - perfect.degradation_cost
        self.results.append(
            DayResult(day[0], done.revenue, done.degradation_cost, perfect_net, done.soc_end_pct)
        )

    def whole_period_net(self) -> float:
        """Net revenue of one optimum over the whole period (over each run of consecutive
        scored days when days are left out), executed the same way."""
        net = 0.0
        for first, end in _segments(self.days):
            prices = self.values[first:end]
            plan = optimize(
                prices,
                self.series.step_h,
                self.storage,
                soc_initial_pct=self.soc_initial_pct,
                soc_final_pct=self.soc_final_pct,
                carbon=self.co2(prices, first, end),
            )
            whole = self._execute(plan, prices, self.soc_initial_pct)
            net += whole.revenue - whole.degradation_cost
        return net

    def result(self, name: str) -> BacktestResult:
        first, end = self.days[0][1], self.days[-1][2]
        series = self.series
        return BacktestResult(
            forecaster=name,
            node=series.node,
            unit=series.unit,
            timezone=series.timezone,
            first_day=self.days[0][0],
            last_day=self.days[-1][0],
            storage=self.storage,
            revenue=self.totals["revenue"],
            degradation_cost=self.totals["wear"],
            perfect_daily_net=self.totals["perfect_net"],
            whole_period_net=self.whole_period_net(),
            cell_throughput_kwh=self.totals["cells"],
            index=series.index[first:end],
            prices=self.values[first:end],
            forecast=self.arrays["forecast"],
            charge_kw=self.arrays["charge"],
            discharge_kw=self.arrays["discharge"],
            soc_pct=self.arrays["soc"],
            days=tuple(self.results),
            soc_initial_pct=self.soc_initial_pct,
            settlement=next((k for k, v in SETTLEMENTS.items() if v is self.settle), "custom"),
            excluded=tuple(self.excluded),
        )


def backtest(
    series: PriceSeries,
    forecaster: str,
    storage: StorageSpec,
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
    min_history_h: float | None = None,
    carbon: CarbonTerm | None = None,
    replan: Replan | None = None,
) -> BacktestResult:
    """Run the day-ahead rolling back-test of one forecaster over ``[first_day, last_day]``
    (local dates, inclusive; default: from the second complete day, so every forecaster has
    history, to the last). Each day's plan must end at ``soc_final_pct`` (default: the
    initial SOC); the rule engine has no terminal target. With ``risk``, forecast strategies
    get p10/p90 bands and plan in the risk-aware mode (the rule engine applies
    ``min_confidence`` and ``min_spread`` as its own filters): the forecaster's own bands from
    ``band_forecasters`` (a trained model's calibrated ones), else the empirical ones
    (:func:`bessai.market.baselines.empirical_bands`). ``min_history_h``: see
    :func:`backtest_days`. Days touched by a gap in the prices are left out and listed in the
    result's ``excluded``. With ``carbon`` every plan (the strategy's and the yardsticks')
    is carbon-aware: :class:`CarbonTerm`. With ``replan`` a forecast strategy re-plans during
    the day as the gateway does (:mod:`.intraday`)."""
    strategy = strategy_of(forecaster, forecasters, band_forecasters, risk)
    days, excluded = backtest_days(series, first_day, last_day, min_history_h)
    target = soc_initial_pct if soc_final_pct is None else soc_final_pct
    run = RollingRun(
        series, storage, settle, days, excluded, soc_initial_pct, target, carbon, replan
    )
    for k, day in enumerate(days):
        run.day(day, strategy)
        if on_day is not None:
            on_day(k + 1, len(days))
    return run.result(forecaster)
