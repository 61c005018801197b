"""The carbon-aware option: a CO2 price times each step's emission factor moves the plan to
cleaner hours without touching how revenue is booked; on a month of real Crucero prices it
trades a little revenue for less CO2."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bessai.analysis.carbon import carbon_backtests
from bessai.carbon.marginal import band_factors, default_bands
from bessai.cli import app
from bessai.config import OptimizerConfig
from bessai.control.planner import SchedulePlanner
from bessai.control.site import SiteRunner
from bessai.errors import ConfigError
from bessai.market.prices import load_prices
from bessai.optimize import CarbonPrice, StorageSpec, optimize
from tests.conftest import DATA
from tests.control.conftest import audit, make_runner

__all__ = ["audit", "make_runner"]  # fixtures shared with the control tests
REPLAY = OptimizerConfig(enabled=True, prices="builtin:crucero-2023", replay=True)

STORAGE = StorageSpec(max_charge_kw=1.0, capacity_kwh=2.0, eta_charge=1.0, eta_discharge=1.0)
CRUCERO = DATA / "cen_cmg_crucero220_2019-2023.csv"


def test_equal_prices_charge_in_the_clean_hours_when_co2_has_a_price() -> None:
    prices = np.array([10.0, 10.0, 10.0, 10.0, 60.0, 60.0])
    g_kwh = np.array([800.0, 0.0, 800.0, 0.0, 800.0, 800.0])
    plain = optimize(prices, 1.0, STORAGE, soc_initial_pct=0.0)
    aware = optimize(prices, 1.0, STORAGE, soc_initial_pct=0.0, carbon=CarbonPrice(50.0, g_kwh))
    assert plain.charge_kw[[0, 1]].tolist() == [1.0, 1.0]  # ties go to the earliest hours
    assert aware.charge_kw.tolist() == pytest.approx([0, 1, 0, 1, 0, 0], abs=1e-9)
    # Revenue is booked at the market prices: the same here, since the prices are equal.
    assert aware.revenue == pytest.approx(plain.revenue, abs=1e-9)
    assert aware.revenue == pytest.approx(2 * (60 - 10) / 1000.0, abs=1e-9)


def test_a_co2_price_can_make_a_profitable_trade_not_worth_it() -> None:
    prices = np.array([10.0, 30.0])
    g_kwh = np.array([800.0, 0.0])  # charging is dirty, discharging displaces nothing
    plan = optimize(prices, 1.0, STORAGE, soc_initial_pct=0.0, carbon=CarbonPrice(50.0, g_kwh))
    # The spread of 20 per MWh is worth less than 50 per t x 0.8 t/MWh = 40 per MWh.
    assert plan.charge_kw.sum() == pytest.approx(0.0, abs=1e-9)
    zero = optimize(prices, 1.0, STORAGE, soc_initial_pct=0.0, carbon=CarbonPrice(0.0, g_kwh))
    plain = optimize(prices, 1.0, STORAGE, soc_initial_pct=0.0)
    assert zero.charge_kw.tolist() == plain.charge_kw.tolist()


def test_bad_carbon_inputs_are_named() -> None:
    with pytest.raises(ConfigError, match="2 emission factors for 3 price steps"):
        optimize(
            [1.0, 2.0, 3.0], 1.0, STORAGE, soc_initial_pct=0, carbon=CarbonPrice(1, np.ones(2))
        )
    with pytest.raises(ConfigError, match=">= 0"):
        optimize([1.0], 1.0, STORAGE, soc_initial_pct=0, carbon=CarbonPrice(-1, np.ones(1)))


def test_a_month_of_crucero_trades_revenue_for_co2() -> None:
    series = load_prices(CRUCERO)
    storage = StorageSpec(
        max_charge_kw=1000, capacity_kwh=4000, eta_charge=0.95, eta_discharge=0.95
    )
    plain, aware = carbon_backtests(
        series, "perfect", storage, [0.0, 100.0],
        first_day=date(2023, 3, 1), last_day=date(2023, 3, 31),
    )  # fmt: skip
    marginal = "location-marginal"
    assert aware.totals[marginal].net_kg < plain.totals[marginal].net_kg  # more CO2 avoided
    assert aware.result.revenue < plain.result.revenue  # at some revenue
    assert aware.result.revenue > 0.95 * plain.result.revenue
    # Under the yearly average factor the net is the losses times the factor, in both plans.
    for outcome in (plain, aware):
        t = outcome.totals["location-average"]
        assert t.net_kg == pytest.approx(t.losses_kwh * 291.113 / 1000.0, rel=1e-9)
        assert t.net_kg > 0
    assert plain.embodied_kg > 0


def test_the_cli_compares_both_plans() -> None:
    result = CliRunner().invoke(app, [
        "carbon", "backtest", "--prices", str(CRUCERO), "--from", "2023-03-01",
        "--to", "2023-03-07", "--co2-price", "0", "--co2-price", "50", "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    plain, aware = json.loads(result.stdout)
    assert (plain["co2_price_per_t"], aware["co2_price_per_t"]) == (0.0, 50.0)
    assert {"location-marginal", "location-average"} <= set(plain)


def test_the_gateway_planner_plans_carbon_aware_when_asked(
    make_runner: Callable[..., SiteRunner],
) -> None:
    now = datetime(2026, 3, 14, 12, 30, tzinfo=UTC)  # replayed on 2023-03-14
    plain = SchedulePlanner(make_runner(), REPLAY).plan(now, 50.0)
    aware_config = REPLAY.model_copy(update={"co2_price_per_t": 1000.0})
    aware = SchedulePlanner(make_runner(), aware_config).plan(now, 50.0)
    forecast = np.asarray(aware.forecast)
    thermal = band_factors(forecast, default_bands("CHL")) > 0
    # At 1000 USD/t a thermal hour costs 858 USD/MWh more: the plan charges only in the
    # hours the forecast says renewables are curtailed.
    assert aware.schedule.charge_kw[thermal].sum() == pytest.approx(0.0, abs=1e-6)
    assert aware.schedule.charge_kw.sum() > 0
    assert plain.schedule.charge_kw[thermal].sum() > 0


def test_a_co2_price_needs_usd_prices(
    make_runner: Callable[..., SiteRunner], tmp_path: Path
) -> None:
    prices = tmp_path / "clp.csv"
    index = pd.date_range("2023-01-01", periods=24 * 10, freq="h", tz="UTC")
    pd.DataFrame(
        {
            "timestamp": index.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "price_clp_kwh": np.linspace(10, 80, len(index)),
        }
    ).to_csv(prices, index=False)
    config = OptimizerConfig(enabled=True, prices=str(prices), co2_price_per_t=50.0)
    with pytest.raises(ConfigError, match="needs prices in USD/MWh"):
        SchedulePlanner(make_runner(), config)
