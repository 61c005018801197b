"""What a price on CO2 does to a battery's plan: the day-ahead back-test run revenue-only and
carbon-aware (a CO2 price times each step's marginal factor added to the energy cost), with
the executed schedules' revenue and emissions side by side.

Plans see the factor of the prices they are made on (the CMg bands applied to the forecast, or
to the real prices for perfect foresight), since the real factor of tomorrow is as unknown as
its price. Emissions are booked on the real prices' factor, under each method on its own: the
marginal factor (what the battery changes) and the country's yearly average (which only ever
shows the losses), plus the embodied share of the battery over the life this dispatch gives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from bessai.analysis.backtest import CarbonTerm, backtest
from bessai.analysis.result import BacktestResult
from bessai.analysis.settle import Settle, settle_plant
from bessai.carbon.embodied import DEFAULT_KG_PER_KWH, Embodied, Life, life_from_history
from bessai.carbon.engine import Flows, Totals, account
from bessai.carbon.factors import Factors, country
from bessai.carbon.marginal import Band, band_factors, default_bands, marginal_from_prices
from bessai.market.prices import PriceSeries
from bessai.optimize import StorageSpec
from bessai.optimize.storage import FloatArray


@dataclass(frozen=True, slots=True)
class CarbonOutcome:
    """One back-test at one CO2 price, booked under each factor method."""

    co2_price_per_t: float
    result: BacktestResult
    totals: dict[str, Totals]
    life: Life
    embodied_kg: float

    def summary(self) -> dict[str, object]:
        r = self.result
        doc: dict[str, object] = {
            "co2_price_per_t": self.co2_price_per_t,
            "forecaster": r.forecaster,
            "from": r.first_day.isoformat(),
            "to": r.last_day.isoformat(),
            "currency": r.unit.split("/")[0],
            "revenue": round(r.revenue, 2),
            "net_revenue": round(r.net_revenue, 2),
            "equivalent_full_cycles": round(r.equivalent_full_cycles, 2),
            "life_years": round(self.life.life_years, 2),
            "embodied_share_t": round(self.embodied_kg / 1000.0, 3),
        }
        for key, t in self.totals.items():
            doc[key] = {
                "charged_mwh": round(t.charged_kwh / 1000.0, 3),
                "discharged_mwh": round(t.discharged_kwh / 1000.0, 3),
                "charging_t": round(t.charging_kg / 1000.0, 3),
                "discharging_t": round(t.discharging_kg / 1000.0, 3),
                "net_t": round(t.net_kg / 1000.0, 3),
                "charge_factor_g_kwh": _round(t.charge_factor_g_kwh),
                "discharge_factor_g_kwh": _round(t.discharge_factor_g_kwh),
            }
        return doc


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def band_factor_of(bands: Sequence[Band]) -> Callable[[FloatArray, pd.DatetimeIndex], FloatArray]:
    """The factor a plan sees: the CMg bands applied to the prices it is made on."""

    def factor_of(prices: FloatArray, _steps: pd.DatetimeIndex) -> FloatArray:
        return band_factors(prices, bands)

    return factor_of


def book(result: BacktestResult, methods: Sequence[Factors]) -> dict[str, Totals]:
    """The executed schedule's emissions under each method (AC-side energy per step)."""
    step = result.index[1] - result.index[0] if len(result.index) > 1 else timedelta(hours=1)
    step_h = pd.Timedelta(step).total_seconds() / 3600.0
    flows = Flows(
        result.index,
        pd.Timedelta(step).to_pytimedelta(),
        np.asarray(result.charge_kw) * step_h,
        np.asarray(result.discharge_kw) * step_h,
    )
    return {f.method.key: account(flows, f).totals() for f in methods}


def carbon_backtests(
    series: PriceSeries,
    forecaster: str,
    storage: StorageSpec,
    co2_prices_per_t: Sequence[float],
    *,
    country_code: str = "CHL",
    bands: Sequence[Band] | None = None,
    soc_initial_pct: float = 50.0,
    first_day: date | None = None,
    last_day: date | None = None,
    settle: Settle = settle_plant,
    embodied_kg_per_kwh: float = DEFAULT_KG_PER_KWH,
    on_run: Callable[[float], None] | None = None,
) -> list[CarbonOutcome]:
    """The back-test once per CO2 price (0 = revenue-only), each booked under the marginal
    factor of the real prices and the country's yearly average."""
    chosen = tuple(bands) if bands is not None else default_bands(country_code)
    marginal = marginal_from_prices(series.prices, series.step, chosen, node=series.node)
    methods = [marginal, country(country_code).factors()]
    outcomes = []
    for price in co2_prices_per_t:
        if on_run is not None:
            on_run(price)
        term = CarbonTerm(price, band_factor_of(chosen)) if price > 0 else None
        result = backtest(
            series,
            forecaster,
            storage,
            soc_initial_pct=soc_initial_pct,
            first_day=first_day,
            last_day=last_day,
            settle=settle,
            carbon=term,
        )
        totals = book(result, methods)
        discharged = totals[marginal.method.key].discharged_kwh
        soc = np.concatenate([[soc_initial_pct], result.soc_pct])
        life = life_from_history(soc, series.step_h * 3600.0, discharged)
        embodied = Embodied(storage.capacity_kwh, embodied_kg_per_kwh).share_kg(discharged, life)
        outcomes.append(CarbonOutcome(price, result, totals, life, embodied))
    return outcomes
