"""The accounting identities: a constant factor turns a battery's losses into its only
emissions; time-varying factors turn moving energy into a saving equal to the hand
computation; methods are never added together."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from bessai.carbon.engine import Flows, account, fleet
from bessai.carbon.factors import Basis, Factors, Kind, Method, country
from bessai.carbon.marginal import default_bands, marginal_from_prices
from bessai.errors import DataError
from bessai.market.prices import load_prices
from tests.conftest import DATA

FLAT = Method(Kind.AVERAGE, Basis.LOCATION, "flat")
HOURLY = Method(Kind.MARGINAL, Basis.LOCATION, "hourly")
ETA_ROUND_TRIP = 0.9


def _crucero_month() -> pd.Series:
    series = load_prices(DATA / "cen_cmg_crucero220_2019-2023.csv").prices
    return series["2023-03-01":"2023-03-31"]  # type: ignore[misc]


def _daily_arbitrage(prices: pd.Series) -> Flows:
    """Charge 5 kW in each local day's 4 cheapest hours, give back 90 % of it in its 4 dearest:
    every day ends where it started."""
    kw = np.zeros(len(prices))
    local_day = prices.index.tz_convert("America/Santiago").date
    for day in np.unique(local_day):
        idx = np.flatnonzero(local_day == day)
        if len(idx) < 8:
            continue
        order = idx[np.argsort(prices.to_numpy()[idx], kind="stable")]
        kw[order[:4]] = 5.0
        kw[order[-4:]] = -5.0 * ETA_ROUND_TRIP
    index = pd.DatetimeIndex(prices.index)
    return Flows.from_power(index, timedelta(hours=1), kw, "crucero")


def test_flat_factor_net_equals_losses_times_factor() -> None:
    flows = _daily_arbitrage(_crucero_month())
    f = country("CHL").g_kwh
    totals = account(flows, Factors.constant(FLAT, f)).totals()
    losses_kwh = flows.charged_kwh.sum() * (1 - ETA_ROUND_TRIP)
    assert totals.losses_kwh == pytest.approx(losses_kwh, rel=1e-12)
    assert totals.net_kg == pytest.approx(losses_kwh * f / 1000.0, rel=1e-12)
    assert totals.net_kg > 0  # with one factor, a battery only adds its losses


def test_low_to_high_hours_saves_what_the_hand_computation_says() -> None:
    start = pd.date_range("2023-01-01T00:00Z", periods=4, freq="h")
    # Charge 10 kWh at 100 g/kWh, then 2 kWh at 300; discharge 9 kWh at 800, 1.8 at 600.
    flows = Flows(
        start, timedelta(hours=1), np.array([10.0, 2.0, 0, 0]), np.array([0, 0, 9.0, 1.8])
    )
    factors = Factors.from_series(
        HOURLY, pd.Series([100.0, 300.0, 800.0, 600.0], index=start), timedelta(hours=1)
    )
    totals = account(flows, factors).totals()
    by_hand_kg = (10 * 100 + 2 * 300 - 9 * 800 - 1.8 * 600) / 1000.0  # = -6.68
    assert totals.net_kg == pytest.approx(by_hand_kg, abs=1e-12)
    assert totals.saved_kg == pytest.approx(6.68, abs=1e-12)
    assert totals.charge_factor_g_kwh == pytest.approx((1000 + 600) / 12)
    assert totals.discharge_factor_g_kwh == pytest.approx((7200 + 1080) / 10.8)


def test_arbitrage_on_crucero_saves_co2_under_the_cmg_marginal_factor() -> None:
    prices = _crucero_month()
    flows = _daily_arbitrage(prices)
    marginal = marginal_from_prices(prices, timedelta(hours=1), default_bands("CHL"))
    acc = account(flows, marginal)
    by_hand = float(
        np.sum(flows.charged_kwh * acc.frame["factor_g_kwh"])
        - np.sum(flows.discharged_kwh * acc.frame["factor_g_kwh"])
    )
    assert acc.totals().net_kg == pytest.approx(by_hand / 1000.0, rel=1e-12)
    # March 2023 midday CMg is 0 at Crucero: charging there is curtailed solar.
    assert acc.totals().charge_factor_g_kwh < 100
    assert acc.totals().saved_kg > 0


def test_periods_sum_to_the_total_and_cut_local_days() -> None:
    flows = _daily_arbitrage(_crucero_month())
    acc = account(flows, Factors.constant(FLAT, 291.113))
    days = acc.per("day", "America/Santiago")
    assert days["net_kg"].sum() == pytest.approx(acc.totals().net_kg, rel=1e-12)
    assert str(days.index.tz) == "America/Santiago"
    hours = acc.per("hour")
    assert len(hours) == len(flows.start)


def test_fleet_adds_sites_and_refuses_mixed_methods() -> None:
    start = pd.date_range("2023-01-01T00:00Z", periods=2, freq="h")
    a = Flows(start, timedelta(hours=1), np.array([1.0, 0]), np.array([0, 0.9]), "a")
    b = Flows(start[1:], timedelta(hours=1), np.array([2.0]), np.array([0.0]), "b")
    flat = Factors.constant(FLAT, 500.0)
    total = fleet([account(a, flat), account(b, flat)]).totals()
    assert total.charged_kwh == 3.0
    assert total.net_kg == pytest.approx((3.0 - 0.9) * 0.5)
    other = Factors.constant(HOURLY, 500.0)
    with pytest.raises(DataError, match="different methods"):
        fleet([account(a, flat), account(b, other)])


def test_a_step_without_a_factor_is_an_error_not_a_guess() -> None:
    start = pd.date_range("2023-01-01T00:00Z", periods=2, freq="h")
    flows = Flows(start, timedelta(hours=1), np.array([1.0, 1.0]), np.array([0.0, 0.0]))
    short = Factors.from_series(HOURLY, pd.Series([1.0], index=start[:1]), timedelta(hours=1))
    with pytest.raises(DataError, match=r"1 step\(s\) with energy, the first at 2023-01-01T01"):
        account(flows, short)


def test_flows_reject_negative_energy() -> None:
    start = pd.DatetimeIndex([datetime(2023, 1, 1, tzinfo=UTC)])
    with pytest.raises(ValueError, match="magnitudes"):
        Flows(start, timedelta(hours=1), np.array([-1.0]), np.array([0.0]))
