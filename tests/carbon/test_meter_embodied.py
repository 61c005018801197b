"""Measured power becomes energy per 15-min interval with gaps left out; the embodied share
follows the degradation model's square-root laws."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bessai.carbon.embodied import Embodied, life_from_history
from bessai.carbon.meter import EnergyMeter
from bessai.plant.degradation import capacity_fade

T0 = datetime(2023, 1, 1, 0, 0, tzinfo=UTC)


def _feed(meter: EnergyMeter, seconds: range, power_w: float | None) -> list:
    closed = []
    for s in seconds:
        closed += meter.add(T0 + timedelta(seconds=s), power_w)
    return closed


def test_constant_power_fills_aligned_intervals() -> None:
    meter = EnergyMeter("s")
    closed = _feed(meter, range(0, 1805, 5), 4000.0)  # 30 min of 4 kW charging, 5 s cycles
    assert [c.start for c in closed] == [T0, T0 + timedelta(minutes=15)]
    for c in closed:
        assert c.charged_kwh == pytest.approx(1.0)  # 4 kW for 15 min
        assert c.discharged_kwh == 0.0
        assert c.covered_s == 900.0


def test_discharge_and_a_gap_are_kept_apart() -> None:
    meter = EnergyMeter("s", max_gap_s=30)
    closed = _feed(meter, range(0, 300, 5), -3600.0)  # 5 min discharging at 3.6 kW
    closed += _feed(meter, range(600, 905, 5), -3600.0)  # 5 min hole, then 5 min more
    [first] = closed
    # The hold of the sample at 295 s would last 305 s: a gap, so 295 s + 300 s are counted.
    assert first.discharged_kwh == pytest.approx(3.6 * 595 / 3600)
    assert first.covered_s == pytest.approx(595.0)


def test_missing_samples_are_not_counted() -> None:
    meter = EnergyMeter("s")
    _feed(meter, range(0, 450, 5), 3600.0)
    _feed(meter, range(450, 900, 5), None)
    closed = meter.add(T0 + timedelta(seconds=900), 3600.0)
    assert closed[0].charged_kwh == pytest.approx(0.45)
    assert closed[0].covered_s == pytest.approx(450.0)


def test_flush_then_resume_never_counts_time_twice() -> None:
    meter = EnergyMeter("s")
    _feed(meter, range(0, 305, 5), 3600.0)
    partial = meter.flush()
    assert partial is not None
    assert partial.end == T0 + timedelta(seconds=300)
    restarted = EnergyMeter("s", not_before=partial.end)
    closed = _feed(restarted, range(200, 905, 5), 3600.0)
    assert closed[0].start == partial.end
    assert partial.charged_kwh + closed[0].charged_kwh == pytest.approx(0.9)


def _daily_cycles(days: int, depth: float = 80.0) -> np.ndarray:
    one_day = np.concatenate(
        [
            np.linspace(10, 10 + depth, 17)[:-1],
            np.linspace(10 + depth, 10, 17)[:-1],
            np.full(64, 10.0),
        ]
    )
    return np.concatenate([np.tile(one_day, days), [10.0]])


def test_the_life_is_what_repeating_the_history_fades_to_end_of_life() -> None:
    soc = _daily_cycles(30)
    life = life_from_history(soc, 900.0, discharged_kwh=30 * 0.8 * 10)
    repeats = life.life_years * 365.25 / 30
    # The model says: repeating this month `repeats` times fades the battery by 20 %.
    long = np.concatenate([np.tile(soc[:-1], round(repeats)), [10.0]])
    assert capacity_fade(long, 25.0, 900.0).total_fade == pytest.approx(0.2, rel=0.02)
    assert life.lifetime_discharged_kwh == pytest.approx(repeats * 240.0)
    embodied = Embodied(capacity_kwh=10.0, kg_per_kwh=100.0)
    assert embodied.per_kwh_discharged(life) == pytest.approx(1000.0 / life.lifetime_discharged_kwh)
    assert embodied.share_kg(240.0, life) == pytest.approx(1000.0 / repeats)


def test_an_idle_battery_is_capped_at_its_service_life() -> None:
    life = life_from_history(np.full(97, 50.0), 900.0, discharged_kwh=0.0)
    assert life.life_years > 5  # calendar ageing alone
    assert Embodied(10.0).per_kwh_discharged(life) == 0.0
