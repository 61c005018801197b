"""The schedule planner beside the cycle: plans from the measured SOC on real prices, the site
follows the current slot through the guard, and a stale plan falls back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bessai.config import OptimizerConfig, load_config
from bessai.control.audit import AuditLog
from bessai.control.planner import SchedulePlanner
from bessai.control.site import SiteRunner
from bessai.errors import ConfigError
from bessai.simulator.server import SimulatorServer
from tests.devices.fake import FakeDevice

REPLAY = OptimizerConfig(enabled=True, prices="builtin:crucero-2023", replay=True)


async def test_site_follows_the_plan_through_the_guard(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner]
) -> None:
    runner = make_runner()
    planner = SchedulePlanner(runner, REPLAY)
    first = await runner.step()
    assert first.proposal.controller == "idle"
    plan = await planner.replan()
    assert plan is not None
    assert plan.schedule.status == "optimal"
    assert plan.schedule.soc_initial_pct == pytest.approx(first.measurements.soc_pct, abs=0.2)
    record = await runner.step()
    assert record.proposal.controller == "schedule"
    assert record.proposal.reason.startswith("plan: ")
    slot = int((record.ts - plan.start) / timedelta(hours=1))
    wanted_w = 1000 * float(plan.schedule.net_kw[slot])
    assert record.proposal.setpoint_w == pytest.approx(wanted_w)
    assert abs(record.decision.setpoint_w) <= 5000  # the guard still bounds it
    # The planner's battery is the site's: safety SOC limits and power.
    battery = planner.battery()
    assert (battery.soc_min_pct, battery.soc_max_pct) == (5.0, 98.0)
    assert battery.max_charge_kw == 5.0


async def test_a_stale_plan_falls_back(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner]
) -> None:
    runner = make_runner()
    planner = SchedulePlanner(runner, REPLAY)
    await runner.step()
    plan = await planner.replan()
    assert plan is not None
    runner.schedule.created_at = datetime.now(UTC) - timedelta(hours=2)
    record = await runner.step()
    assert record.proposal.controller == "idle"


def test_replay_plans_on_the_same_date_of_the_sample_year(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner]
) -> None:
    planner = SchedulePlanner(make_runner(), REPLAY)
    now = datetime(2026, 7, 14, 12, 30, tzinfo=UTC)
    plan = planner.plan(now, 50.0)
    assert plan.start == datetime(2026, 7, 14, 12, 0, tzinfo=UTC)
    assert plan.price_time_offset == datetime(2023, 7, 14, tzinfo=UTC) - datetime(
        2026, 7, 14, tzinfo=UTC
    )
    assert len(plan.schedule) == 24


def test_bad_planner_configuration_is_named(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner]
) -> None:
    runner = make_runner()
    with pytest.raises(ConfigError, match=r"optimizer\.forecaster 'oracle'"):
        SchedulePlanner(runner, OptimizerConfig(forecaster="oracle"))
    with pytest.raises(ConfigError, match="unknown built-in price sample 'mars'"):
        SchedulePlanner(runner, OptimizerConfig(prices="builtin:mars"))
    planner = SchedulePlanner(runner, OptimizerConfig(prices="builtin:crucero-2023"))
    with pytest.raises(ConfigError, match="the price file ends before"):
        planner.plan(datetime(2030, 1, 1, tzinfo=UTC), 50.0)


def test_the_default_plan_never_cycles_for_pennies(tmp_path: Path) -> None:
    """The demo's site as shipped: its wear cost comes from the degradation model, and no plan
    over the sample year discharges at a price that does not pay for the wear."""
    config, _ = load_config(None)
    site_cfg = config.sites[0]
    runner = SiteRunner(site_cfg, FakeDevice(), AuditLog(tmp_path / "audit.sqlite"))
    planner = SchedulePlanner(runner, site_cfg.optimizer)
    wear = planner.wear_cost_per_mwh()
    assert 10.0 < wear < 40.0  # LFP at 300 per kWh, a cycle a day: about 21 per MWh
    battery = planner.battery()
    cheap_discharges = []
    for day in range(0, 364, 3):
        now = datetime(2026, 1, 1, 1, tzinfo=UTC) + timedelta(days=day)
        plan = planner.plan(now, 60.0)
        for price, kw in zip(plan.schedule.prices, plan.schedule.discharge_kw, strict=True):
            # Every MWh delivered costs the wear of what went through the cells for it.
            if kw > 1e-6 and price < wear / battery.eta_discharge:
                cheap_discharges.append((now.date(), float(price), float(kw)))
    assert cheap_discharges == []
