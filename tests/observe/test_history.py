"""The in-memory recent history: bounded per site, downsampled for fast cycles without losing a
safety-state change, ordered, and filled from real cycle records of a site on the simulator."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bessai.control.site import SiteRunner
from bessai.observe.history import HistoryPoint, RecentHistory, SiteHistory
from bessai.simulator.server import SimulatorServer

T0 = datetime(2026, 1, 15, 16, 0, tzinfo=UTC)


def point(t_s: float, state: str = "normal", soc_pct: float = 50.0) -> HistoryPoint:
    return HistoryPoint(
        ts=T0 + timedelta(seconds=t_s),
        soc_pct=soc_pct,
        battery_power_w=1000.0,
        pv_power_w=2000.0,
        grid_power_w=-500.0,
        load_power_w=500.0,
        setpoint_w=1000.0,
        safety_state=state,
    )


def test_the_buffer_keeps_at_most_its_window_of_points() -> None:
    history = RecentHistory({"a": 1.0}, window_s=60.0, max_points=60)
    buffer = history.sites["a"]
    for i in range(500):
        buffer.add(point(i))
    assert len(buffer) == 61  # the window plus one, never more
    kept = buffer.since(T0)
    assert kept[0].ts == T0 + timedelta(seconds=439)
    assert kept[-1].ts == T0 + timedelta(seconds=499)


def test_a_fast_site_is_downsampled_but_a_state_change_is_kept() -> None:
    # 0.1 s cycles in a one-hour window of 3600 points: one point per second.
    history = RecentHistory({"fast": 0.1})
    buffer = history.sites["fast"]
    assert buffer.resolution_s == pytest.approx(1.0)
    kept = [buffer.add(point(i / 10)) for i in range(30)]
    assert sum(kept) == 3  # t = 0, 1.0, 2.0 s
    assert buffer.add(point(2.2, state="safe"))  # a short SAFE shows in the chart
    assert buffer.add(point(2.3, state="normal"))
    assert not buffer.add(point(2.4, state="normal"))
    assert [p.safety_state for p in buffer.since(T0)] == ["normal"] * 3 + ["safe", "normal"]


def test_a_slow_site_keeps_every_cycle_for_the_whole_window() -> None:
    buffer = RecentHistory({"slow": 5.0}).sites["slow"]
    assert buffer.resolution_s == 5.0
    # Cycles a few milliseconds early are cycles all the same.
    assert all(buffer.add(point(i * 4.99)) for i in range(800))
    assert len(buffer) == 721  # one hour of 5 s cycles, plus one


def test_points_stay_ordered_when_the_clock_steps_back() -> None:
    buffer = SiteHistory(resolution_s=1.0, maxlen=100)
    assert buffer.add(point(10))
    assert not buffer.add(point(5))
    assert buffer.add(point(11))
    assert [p.ts for p in buffer.since(T0)] == [T0 + timedelta(seconds=s) for s in (10, 11)]


def test_recent_returns_the_last_minutes_only() -> None:
    history = RecentHistory({"a": 1.0})
    for i in range(600):
        history.sites["a"].add(point(i))
    now = T0 + timedelta(seconds=600)
    last_minute = history.recent("a", 1, now)
    assert [p.ts for p in last_minute] == [T0 + timedelta(seconds=s) for s in range(540, 600)]
    assert len(history.recent("a", 60, now)) == 600
    with pytest.raises(KeyError):
        history.recent("nope", 1, now)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="positive window"):
        RecentHistory({"a": 1.0}, window_s=0)


async def test_observe_keeps_a_real_cycle_records_key_values(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner]
) -> None:
    runner = make_runner()
    history = RecentHistory({runner.id: runner.config.cycle_s, "other": 5.0})
    runner.listeners.append(history.observe)
    record = await runner.step()
    [kept] = history.recent(runner.id, 1, record.ts + timedelta(seconds=1))
    m = record.measurements
    assert kept.ts == record.ts
    assert kept.soc_pct == m.soc_pct is not None
    assert kept.battery_power_w == m.battery_power_w
    assert kept.pv_power_w == m.pv_power_w
    assert kept.grid_power_w == m.grid_power_w
    assert kept.load_power_w == m.load_power_w
    assert kept.setpoint_w == record.decision.setpoint_w
    assert kept.safety_state == record.safety_state.value
    assert len(history.sites["other"]) == 0
