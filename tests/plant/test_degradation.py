"""Rainflow against ASTM E1049-85 and an independent implementation; fade against the
published LFP fits."""

from __future__ import annotations

import time

import numpy as np
import pytest
import rainflow
from hypothesis import given, settings
from hypothesis import strategies as st

from bessai.plant.degradation import (
    NAUMANN_SONY_LFP,
    DegradationTracker,
    capacity_fade,
    count_cycles,
)


def test_astm_e1049_example() -> None:
    # ASTM E1049-85 (2017) Fig. 6 / Table 4: rainflow counting of the example load history.
    history = [-2, 1, -3, 5, -1, 3, -4, 4, -2]
    assert count_cycles(history) == [(3, 0.5), (4, 1.5), (6, 0.5), (8, 1.0), (9, 0.5)]
    assert count_cycles(history) == rainflow.count_cycles(history)


@pytest.mark.parametrize("n", [3, 4, 7, 50, 1000, 10_000])
def test_equals_reference_on_random_series(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(20 if n < 1000 else 2):
        walk = np.cumsum(rng.normal(size=n))
        assert count_cycles(walk) == rainflow.count_cycles(walk.tolist())
        # Coarse values make plateaus and repeated ranges, the cases that break naive code.
        coarse = rng.integers(-3, 4, size=n).astype(float)
        assert count_cycles(coarse) == rainflow.count_cycles(coarse.tolist())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-20, 20).map(float), min_size=3, max_size=60))
def test_equals_reference_property(series: list[float]) -> None:
    assert count_cycles(series) == rainflow.count_cycles(series)


def test_short_series() -> None:
    assert count_cycles([]) == []
    assert count_cycles([1.0]) == []
    # ASTM treats both ends of a history as reversals: one half cycle (the package drops it).
    assert count_cycles([0.0, 2.0]) == [(2.0, 0.5)]


def test_rejects_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        count_cycles([0.0, float("nan"), 1.0])


def test_total_count_conserves_reversals() -> None:
    # Every range between consecutive reversals is counted exactly once as a half cycle or
    # paired into a full one, so 2 * sum(counts) = number of reversals - 1.
    rng = np.random.default_rng(3)
    x = rng.normal(size=5000)
    d = np.diff(x)
    n_rev = int(np.sum(d[:-1] * d[1:] < 0)) + 2
    assert 2 * sum(c for _, c in count_cycles(x)) == pytest.approx(n_rev - 1)


def test_year_of_15min_data_is_fast() -> None:
    rng = np.random.default_rng(0)
    soc = np.clip(50 + np.cumsum(rng.normal(scale=3.0, size=35_040)), 0, 100)
    t0 = time.perf_counter()
    capacity_fade(soc, 25.0, 900.0)
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0, elapsed


def test_online_tracker_matches_batch() -> None:
    rng = np.random.default_rng(7)
    soc = np.clip(50 + np.cumsum(rng.normal(scale=4.0, size=3000)), 0, 100)
    temp = 25 + 10 * rng.random(3000)
    batch = capacity_fade(soc, temp, 600.0)
    tracker = DegradationTracker(soc[0], temp[0])
    for s, t in zip(soc[1:], temp[1:], strict=True):
        tracker.update(s, t, 600.0)
    online = tracker.result()
    assert online.calendar_fade == pytest.approx(batch.calendar_fade, rel=1e-9)
    assert online.cycle_fade == pytest.approx(batch.cycle_fade, rel=1e-9)
    assert online.equivalent_full_cycles == pytest.approx(batch.equivalent_full_cycles, rel=1e-9)


def test_calendar_reproduces_the_published_constant_condition_law() -> None:
    # Naumann 2018 eq.: Q = k_T(T) k_SOC(SOC) sqrt(t). At the reference 25 °C and 50 % SOC
    # k = 1.2571e-5 * 0.60225; after 300 days of storage the loss is k * sqrt(300 d).
    days = 300
    soc = np.full(days * 24 + 1, 50.0)
    fade = capacity_fade(soc, 25.0, 3600.0)
    expected = 1.2571e-5 * 0.60225 * np.sqrt(days * 86400.0)
    assert fade.calendar_fade == pytest.approx(expected, rel=1e-9)
    assert fade.cycle_fade == 0.0
    # Hotter and fuller ages faster (Arrhenius, cubic SOC term).
    hot = capacity_fade(np.full(100, 90.0), 40.0, 3600.0)
    cool = capacity_fade(np.full(100, 90.0), 25.0, 3600.0)
    low = capacity_fade(np.full(100, 20.0), 25.0, 3600.0)
    assert hot.calendar_fade > cool.calendar_fade > low.calendar_fade


def test_cycle_term_grows_with_depth_and_rate() -> None:
    def daily(depth: float, hours_per_half: int) -> float:
        # One cycle a day of the given depth at constant rate, 15-min samples.
        steps = hours_per_half * 4
        up = np.linspace(50 - depth / 2, 50 + depth / 2, steps + 1)
        day = np.concatenate([up, up[::-1][1:], np.full(96 - 2 * steps - 1, up[0])])
        soc = np.tile(day, 365)
        return capacity_fade(soc, 25.0, 900.0, NAUMANN_SONY_LFP).cycle_fade

    assert daily(80, 2) > daily(40, 2) > daily(20, 2)
    assert daily(80, 1) > daily(80, 4)
