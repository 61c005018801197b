"""The optimizer against an independent formulation, on real prices, and on broken states."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bessai.errors import ConfigError
from bessai.market.prices import load_prices, market_days
from bessai.optimize import Bands, GridConnection, Risk, StorageSpec, optimize
from bessai.optimize.follow import setpoint_kw


def _enumerate_best(
    prices: list[float], step_h: float, b: StorageSpec, soc0: float, soc_final: float
) -> float:
    """Best net revenue over every path of stored energy on a half-step grid: an independent
    formulation (dynamic state walk, no LP). With the discharge limit set to eta_c*eta_d times
    the charge limit, one full-power step moves the same stored energy either way, so every
    vertex of the LP lies on this grid and the two optima must agree."""
    unit = b.max_charge_kw * b.eta_charge * step_h / 2  # half a full-power step, kWh stored
    e_min, e_max = b.energy_kwh(b.soc_min_pct), b.energy_kwh(b.soc_max_pct)
    e0, e_fin = b.energy_kwh(soc0), b.energy_kwh(soc_final)
    best = -np.inf
    for moves in itertools.product((-2, -1, 0, 1, 2), repeat=len(prices)):
        e = e0
        value = 0.0
        ok = True
        for p, m in zip(prices, moves, strict=True):
            delta = m * unit
            e += delta
            if e < e_min - 1e-9 or e > e_max + 1e-9:
                ok = False
                break
            if delta > 0:
                kw = delta / (b.eta_charge * step_h)
                value -= p * kw * step_h / 1000 + b.degradation_per_mwh * delta / 1000
            elif delta < 0:
                kw = -delta * b.eta_discharge / step_h
                value += p * kw * step_h / 1000 - b.degradation_per_mwh * (-delta) / 1000
        if ok and e >= e_fin - 1e-9:
            best = max(best, value)
    return best


ENUM_CASES = [
    ([30.0, 10.0, 80.0, 20.0, 90.0, 40.0], 0.0, 50.0, 50.0),
    ([50.0, 50.0, 50.0, 10.0, 100.0, 100.0], 5.0, 25.0, 75.0),
    ([-20.0, -40.0, 30.0, 0.0, 60.0, -5.0], 0.0, 100.0, 0.0),  # negative: burns losses
    ([-20.0, -40.0, 30.0, 0.0, 60.0, -5.0], 8.0, 50.0, 100.0),
    ([0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 0.0, 50.0, 50.0),
]


@pytest.mark.parametrize(("prices", "wear", "soc0", "soc_final"), ENUM_CASES)
def test_objective_equals_enumeration(
    prices: list[float], wear: float, soc0: float, soc_final: float
) -> None:
    b = StorageSpec(
        max_charge_kw=500,
        capacity_kwh=950,
        eta_charge=0.95,
        eta_discharge=0.9,
        max_discharge_kw=500 * 0.95 * 0.9,
        soc_min_pct=0,
        soc_max_pct=100,
        degradation_per_mwh=wear,
    )
    s = optimize(prices, 1.0, b, soc_initial_pct=soc0, soc_final_pct=soc_final)
    expected = _enumerate_best(prices, 1.0, b, soc0, soc_final)
    assert s.status == "optimal"
    assert s.violations == ()
    assert s.net_revenue == pytest.approx(expected, abs=1e-6 + 1e-4 * abs(expected))
    assert np.all(np.minimum(s.charge_kw, s.discharge_kw) == 0)


def test_energy_balance_and_bounds_hold() -> None:
    b = StorageSpec(soc_min_pct=10, soc_max_pct=90)
    p = np.array([40, 30, 20, 20, 60, 150, 140, 30, 25, 200, 210, 50.0])
    s = optimize(p, 1.0, b, soc_initial_pct=50)
    e = np.concatenate([[2000.0], s.energy_kwh])
    expected = e[:-1] + s.charge_kw * 0.95 - s.discharge_kw / 0.95
    assert np.allclose(e[1:], expected)
    assert s.soc_pct.min() >= 10 - 1e-6
    assert s.soc_pct.max() <= 90 + 1e-6
    assert s.soc_pct[-1] >= 50 - 1e-6
    assert s.revenue == pytest.approx(float(np.sum(p * (s.discharge_kw - s.charge_kw)) / 1000))


def test_stored_energy_value_is_the_marginal_price() -> None:
    # Charging partly at 40 (not at a limit) makes a stored MWh worth 40/eta_c.
    b = StorageSpec(max_charge_kw=1000, capacity_kwh=1000, eta_charge=0.8, eta_discharge=1.0)
    s = optimize([40.0, 100.0], 1.0, b, soc_initial_pct=0, soc_final_pct=0)
    assert s.charge_kw[0] == pytest.approx(1000)
    assert s.discharge_kw[1] == pytest.approx(800)
    assert s.energy_value_per_mwh[1] == pytest.approx(100.0, rel=1e-3)
    assert "dearest 1 of 2" in s.reasons[1]
    assert "SOC empty" in s.reasons[1]


def test_hourly_and_quarter_hourly_day_earn_the_same(data_dir: Path) -> None:
    series = load_prices(data_dir / "cen_cmg_crucero220_2019-2023.csv")
    day = series.between(series.start + timedelta(days=1500), series.start + timedelta(days=1501))
    quarter = day.resample(timedelta(minutes=15))
    b = StorageSpec()
    hourly = optimize(day.values, day.step_h, b, soc_initial_pct=50)
    q = optimize(quarter.values, quarter.step_h, b, soc_initial_pct=50)
    assert hourly.revenue > 100  # a day with a real spread, so the check means something
    assert q.revenue == pytest.approx(hourly.revenue, rel=1e-5)
    assert len(q) == 96


def test_negative_prices_never_charge_and_discharge_together(data_dir: Path) -> None:
    de = load_prices(data_dir / "smard_day_ahead_prices_2018.csv")
    p = de.values
    worst = int(np.argmin(p))
    window = p[max(0, worst - 72) : worst + 96]
    assert window.min() < -50
    b = StorageSpec()
    s = optimize(window, 1.0, b, soc_initial_pct=50)
    assert s.solver == "milp"  # the LP alone would burn energy by trading both ways
    assert s.status == "optimal"
    assert np.all(np.minimum(s.charge_kw, s.discharge_kw) == 0)
    # Exactness must not cost the obvious: being paid to charge.
    assert s.charge_kw[window < 0].sum() > 0
    # Stored-energy values come from the LP with the switches fixed, so they exist here too.
    assert np.all(np.isfinite(s.energy_value_per_mwh))


def test_no_simultaneous_trade_on_any_day_of_de_2018(data_dir: Path) -> None:
    de = load_prices(data_dir / "smard_day_ahead_prices_2018.csv")
    b = StorageSpec()
    soc = 50.0
    solvers = []
    for _, s, e in market_days(de):
        plan = optimize(de.values[s:e], de.step_h, b, soc_initial_pct=soc)
        assert not np.any(np.minimum(plan.charge_kw, plan.discharge_kw) > 0)
        assert plan.status == "optimal"
        solvers.append(plan.solver)
        soc = float(plan.soc_pct[-1])
    assert len(solvers) == 365
    # Days where the LP burned energy at negative prices took the exact switch.
    assert solvers.count("milp") >= 5


def test_initial_soc_below_minimum_is_a_violation_not_an_error() -> None:
    b = StorageSpec(soc_min_pct=20, soc_max_pct=90)
    s = optimize([50.0, 40.0, 90.0, 100.0], 1.0, b, soc_initial_pct=5)
    assert s.status == "optimal"
    first = s.violations[0]
    assert first.kind == "soc_below_min"
    assert first.step == 0
    assert "initial SOC 5 % is below the minimum 20 %" in first.message
    # It recovers at once: full charge in the first step, back inside the bounds.
    assert s.charge_kw[0] == pytest.approx(1000)
    assert s.soc_pct[0] >= 20


def test_unreachable_target_is_reported() -> None:
    b = StorageSpec(max_charge_kw=100, capacity_kwh=1000)
    s = optimize([10.0, 10.0], 1.0, b, soc_initial_pct=0, soc_final_pct=100)
    assert s.status == "optimal"
    assert [v.kind for v in s.violations] == ["terminal_target"]
    assert s.violations[0].amount == pytest.approx(1000 - 2 * 95)


def test_cycle_cap_limits_daily_throughput() -> None:
    p = np.tile([10.0, 100.0], 12)
    free = optimize(p, 1.0, StorageSpec(), soc_initial_pct=50)
    capped = optimize(p, 1.0, StorageSpec(cycles_per_day=1.0), soc_initial_pct=50)
    cells = lambda s: float(np.sum(s.charge_kw * 0.95 + s.discharge_kw / 0.95))  # noqa: E731
    assert cells(free) > 2 * 4000 * 1.5
    assert cells(capped) <= 2 * 4000 + 1e-6
    assert any("cycle cap" in r for r in capped.reasons)


def test_site_grid_limits_and_pv() -> None:
    # PV of 800 kW exceeds the 300 kW export limit in the middle: the battery must soak it up.
    pv = [0.0, 800.0, 800.0, 0.0]
    grid = GridConnection(pv_kw=pv, load_kw=[0.0] * 4, export_limit_kw=300, import_limit_kw=1000)
    s = optimize([50.0, 90.0, 90.0, 60.0], 1.0, StorageSpec(), soc_initial_pct=0, grid=grid)
    grid = np.array([0.0, -800, -800, 0]) + s.charge_kw - s.discharge_kw
    assert grid.min() >= -300 - 1e-6
    assert s.violations == ()
    assert s.charge_kw[1] >= 500 - 1e-6
    assert s.reasons[1].endswith("grid limit")
    with pytest.raises(ConfigError, match="one value per price step"):
        optimize(
            [1.0, 2.0], 1.0, StorageSpec(), soc_initial_pct=0, grid=GridConnection(pv_kw=[1.0])
        )


def test_equal_prices_are_broken_towards_earlier_steps() -> None:
    b = StorageSpec(max_charge_kw=1000, capacity_kwh=950)
    s = optimize([20.0, 20.0, 20.0, 100.0], 1.0, b, soc_initial_pct=0, soc_final_pct=0)
    assert s.charge_kw.tolist() == pytest.approx([1000, 0, 0, 0])
    again = optimize([20.0, 20.0, 20.0, 100.0], 1.0, b, soc_initial_pct=0, soc_final_pct=0)
    assert np.array_equal(again.charge_kw, s.charge_kw)


def test_risk_mode_holds_low_confidence_and_thin_spreads() -> None:
    p50 = [30.0, 30.0, 60.0, 60.0]
    bands = Bands(p10=[25, 0, 55, 0], p50=p50, p90=[35, 90, 65, 200])
    s = optimize(
        p50,
        1.0,
        StorageSpec(),
        soc_initial_pct=50,
        bands=bands,
        risk=Risk(min_confidence=0.5),
    )
    assert s.charge_kw[1] == 0
    assert s.discharge_kw[3] == 0
    assert s.reasons[1].startswith("hold: confidence")
    assert s.conservative_revenue is not None
    assert s.conservative_revenue < s.revenue
    thin = optimize(
        p50, 1.0, StorageSpec(), soc_initial_pct=50, bands=bands, risk=Risk(min_spread=40)
    )
    assert thin.charge_kw.sum() == 0
    assert thin.discharge_kw.sum() == 0
    assert all(r.startswith("hold: spread below min_spread") for r in thin.reasons)


def test_target_outside_bounds_is_planned_at_the_bound() -> None:
    b = StorageSpec(soc_min_pct=10, soc_max_pct=90)
    s = optimize([10.0, 10.0, 10.0, 10.0, 10.0], 1.0, b, soc_initial_pct=50, soc_final_pct=100)
    assert s.violations == ()
    assert s.soc_pct[-1] == pytest.approx(90)
    assert s.messages == ("final SOC target 100 % is outside the SOC bounds; planned for 90 %",)
    assert s.reasons[-1].endswith("terminal target")


def test_conservative_mode_buys_at_p90_and_sells_at_p10() -> None:
    # On p50 the spread 40 -> 100 pays; at p90 to buy (80) and p10 to sell (70) it does not.
    p50 = [40.0, 100.0]
    bands = Bands(p10=[20.0, 70.0], p50=p50, p90=[80.0, 130.0])
    b = StorageSpec(max_charge_kw=1000, capacity_kwh=1000)
    expected = optimize(p50, 1.0, b, soc_initial_pct=0, soc_final_pct=0, bands=bands)
    assert expected.discharge_kw[1] > 0
    assert expected.conservative_revenue == pytest.approx(
        (70 * expected.discharge_kw[1] - 80 * expected.charge_kw[0]) / 1000
    )
    careful = optimize(
        p50, 1.0, b, soc_initial_pct=0, soc_final_pct=0, bands=bands, risk=Risk(conservative=True)
    )
    assert careful.charge_kw.sum() == 0
    assert careful.discharge_kw.sum() == 0


def test_following_a_plan_and_falling_back_to_idle() -> None:
    b = StorageSpec(max_charge_kw=1000, capacity_kwh=1000)
    plan = optimize([10.0, 100.0, 50.0, 50.0], 0.25, b, soc_initial_pct=0, soc_final_pct=0)
    start = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
    limit = timedelta(minutes=45)
    power, why = setpoint_kw(plan, start, start + timedelta(minutes=5), max_age=limit)
    assert power == pytest.approx(1000)
    assert why.startswith("charge")
    power, why = setpoint_kw(plan, start, start + timedelta(minutes=20), max_age=limit)
    assert power < 0
    assert why.startswith("discharge")
    assert setpoint_kw(plan, start, start + timedelta(minutes=50), max_age=limit) == (
        0.0,
        "idle: plan is 0:50:00 old (limit 0:45:00)",
    )
    long = timedelta(hours=2)
    assert setpoint_kw(plan, start, start + timedelta(minutes=61), max_age=long)[1] == (
        "idle: plan has ended"
    )
    assert setpoint_kw(plan, start, start - timedelta(minutes=1), max_age=long)[0] == 0.0
