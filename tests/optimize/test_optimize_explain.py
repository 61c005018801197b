"""Every reason agrees with its numbers: a year of daily plans on Crucero, each slot's reason
parsed and its printed figures checked against its label and against the plan."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from bessai.market.baselines import empirical_bands, week_mean
from bessai.market.prices import PriceSeries, load_prices, market_days
from bessai.optimize import Risk, Schedule, StorageSpec, optimize

NUM = r"(-?\d+\.\d\d)"
TRADE = re.compile(
    rf"^(charge): cheapest (\d+) of (\d+) \({NUM}\)|^(discharge): dearest (\d+) of (\d+) \({NUM}\)"
)
INSIDE = re.compile(rf"^idle: price {NUM} inside the no-trade band \[{NUM}, {NUM}\] ")
CONSERVATIVE = re.compile(rf"^idle: p90 {NUM} not below {NUM} and p10 {NUM} not above {NUM} ")
FULL = re.compile(rf"^idle: cheap \({NUM}\) but SOC full")
EMPTY = re.compile(rf"^idle: dear \({NUM}\) but SOC empty")
HOLD_SPREAD = re.compile(r"^hold: spread below min_spread ")
STORAGE = StorageSpec(soc_min_pct=5, soc_max_pct=95, degradation_per_mwh=2.0)


@pytest.fixture(scope="module")
def crucero_2023(data_dir: Path) -> PriceSeries:
    series = load_prices(data_dir / "cen_cmg_crucero220_2019-2023.csv")
    return series


def _ranks(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(p)
    cheap = np.empty(n, dtype=int)
    cheap[np.lexsort((np.arange(n), p))] = np.arange(1, n + 1)
    dear = np.empty(n, dtype=int)
    dear[np.lexsort((np.arange(n), -p))] = np.arange(1, n + 1)
    return cheap, dear


def _check_trade(plan: Schedule, t: int, m: re.Match[str]) -> None:
    action = m.group(1) or m.group(5)
    rank, n, price = (m.group(2), m.group(3), m.group(4)) if m.group(1) else m.groups()[5:8]
    cheap, dear = _ranks(plan.prices)
    assert int(n) == len(plan)
    assert price == f"{plan.prices[t]:.2f}"
    if action == "charge":
        assert plan.charge_kw[t] > 0
        assert int(rank) == cheap[t]
    else:
        assert plan.discharge_kw[t] > 0
        assert int(rank) == dear[t]


def _check_binding(plan: Schedule, t: int, reason: str) -> None:
    limits = reason.split("; ")[1] if "; " in reason else ""
    flow = max(plan.charge_kw[t], plan.discharge_kw[t])
    if "power limit" in limits:
        assert flow == pytest.approx(STORAGE.max_charge_kw, abs=1e-6)
    if "SOC full" in limits:
        assert plan.soc_pct[t] >= STORAGE.soc_max_pct - 1e-4
    if "SOC empty" in limits:
        assert plan.soc_pct[t] <= STORAGE.soc_min_pct + 1e-4


def check_reasons(plan: Schedule, decision: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Parse every reason of ``plan`` and check its numbers; ``decision`` holds the prices
    the conservative mode buys and sells at (p90, p10)."""
    for t, reason in enumerate(plan.reasons):
        before = plan.soc_initial_pct if t == 0 else plan.soc_pct[t - 1]
        if (m := TRADE.match(reason)) is not None:
            _check_trade(plan, t, m)
            _check_binding(plan, t, reason)
            continue
        assert plan.charge_kw[t] == 0
        assert plan.discharge_kw[t] == 0
        if (m := INSIDE.match(reason)) is not None:
            price, lo, hi = (float(x) for x in m.groups())
            assert m.group(1) == f"{plan.prices[t]:.2f}"
            assert lo <= price <= hi, reason
        elif (m := CONSERVATIVE.match(reason)) is not None:
            assert decision is not None
            buy, lo, sell, hi = (float(x) for x in m.groups())
            assert m.group(1) == f"{decision[0][t]:.2f}"
            assert m.group(3) == f"{decision[1][t]:.2f}"
            assert buy >= lo, reason
            assert sell <= hi, reason
        elif (m := FULL.match(reason)) is not None:
            assert before >= STORAGE.soc_max_pct - 1e-4, reason
        elif (m := EMPTY.match(reason)) is not None:
            assert before <= STORAGE.soc_min_pct + 1e-4, reason
        else:
            assert HOLD_SPREAD.match(reason), f"unexpected reason at step {t}: {reason}"
        if reason.endswith("terminal target"):
            assert t == len(plan) - 1


def test_every_reason_of_a_year_of_plans_agrees_with_its_numbers(
    crucero_2023: PriceSeries,
) -> None:
    series = crucero_2023
    days = [d for d in market_days(series) if d[0].year == 2023]
    assert len(days) == 365
    soc = 50.0
    labels: set[str] = set()
    for _, s, e in days:
        plan = optimize(series.values[s:e], series.step_h, STORAGE, soc_initial_pct=soc)
        check_reasons(plan)
        labels.update(r.split(" ")[0] + r.split(" ")[1] for r in plan.reasons)
        soc = float(plan.soc_pct[-1])
    # The year exercises charges, discharges and the no-trade band.
    assert {"charge:cheapest", "discharge:dearest", "idle:price"} <= labels


@pytest.mark.parametrize(
    "risk", [Risk(min_spread=20.0), Risk(conservative=True)], ids=["min-spread", "conservative"]
)
def test_risk_mode_reasons_agree_with_their_numbers(crucero_2023: PriceSeries, risk: Risk) -> None:
    """The week-mean forecast with its empirical bands, planned in the risk-aware mode."""
    series = crucero_2023
    days = [d for d in market_days(series) if d[0].year == 2023 and d[0].month in (1, 6)]
    soc = 50.0
    holds = 0
    for _, s, e in days:
        history, steps = series.prices.iloc[:s], series.index[s:e]
        point = week_mean(history, steps, series.timezone)
        bands = empirical_bands(history, steps, series.timezone, point)
        plan = optimize(point, series.step_h, STORAGE, soc_initial_pct=soc, bands=bands, risk=risk)
        decision = (np.asarray(bands.p90), np.asarray(bands.p10)) if risk.conservative else None
        check_reasons(plan, decision)
        holds += sum(r.startswith(("hold", "idle: p90")) for r in plan.reasons)
        soc = float(plan.soc_pct[-1])
    assert holds > 0  # the risk-specific labels were exercised
