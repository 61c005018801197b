"""The learned policy in the gateway on the simulator: its setpoints pass the safety verdict and
reach the audit, and each failure kind falls back to the optimizer's plan, saying why."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from bessai.cli import app
from bessai.config import SiteConfig
from bessai.control.audit import AuditLog
from bessai.control.planner import SchedulePlanner
from bessai.control.safety import Outcome
from bessai.control.site import CycleRecord, SiteMode, SiteRunner
from bessai.observe.policy import attach_policy
from bessai.policy.card import load_card
from bessai.simulator.server import SimulatorServer
from tests.policy.conftest import POLICY, write_graph_policy

#: the forecaster the committed policy was trained on (its card's, observation layout 2)
REPLAY = {
    "enabled": True,
    "prices": "builtin:crucero-2023",
    "replay": True,
    "forecaster": "recent-mean-ar",
}


def _policy_site(
    make_runner: Callable[..., SiteRunner], policy: Path, **controllers: Any
) -> tuple[SiteRunner, SchedulePlanner]:
    runner = make_runner(optimizer=REPLAY, controllers={"policy": f"onnx:{policy}", **controllers})
    return runner, SchedulePlanner(runner, runner.config.optimizer)


async def _cycles(runner: SiteRunner, planner: SchedulePlanner, n: int) -> list[CycleRecord]:
    await runner.step()  # the first measurement
    assert await planner.replan() is not None
    return [await runner.step() for _ in range(n)]


async def test_policy_setpoints_pass_the_verdict_and_the_audit(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner], audit: AuditLog
) -> None:
    # A generous time limit: this test is about the path, not the speed of a loaded machine.
    runner, planner = _policy_site(make_runner, POLICY, policy_max_ms=1000.0)
    records = await _cycles(runner, planner, 6)
    assert runner.learned is not None
    assert runner.learned.problem is None
    for record in records:
        assert record.proposal.controller == "policy"
        assert record.proposal.reason.startswith("learned policy: action ")
        assert abs(record.proposal.setpoint_w) <= 5000
        # The verdict decided what reached the device, as for every controller.
        again = runner.verdict(record.proposal.setpoint_w, record.measurements)
        assert abs(record.decision.setpoint_w) <= 5000
        assert again.outcome is record.decision.outcome
    rows = [r for r in audit.query(site=runner.id, limit=100) if r["controller"] == "policy"]
    assert rows, "the policy's setpoints are audited"
    audited = {round(r["requested_w"]) for r in rows}
    for record in records:
        assert round(record.proposal.setpoint_w) in audited
    assert len(runner.learned.latencies_ms) == 6


async def test_the_guard_still_blocks_the_policy(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner]
) -> None:
    runner, planner = _policy_site(make_runner, POLICY, policy_max_ms=1000.0)
    await runner.set_mode(SiteMode.SAFE)
    records = await _cycles(runner, planner, 2)
    for record in records:
        assert record.proposal.controller == "policy"
        assert record.decision.outcome is Outcome.BLOCKED
        assert record.decision.setpoint_w == 0.0


def _fell_back(records: list[CycleRecord], why: str) -> None:
    for record in records:
        assert record.proposal.controller == "schedule"
        assert record.proposal.reason.startswith("plan: ")
        assert why in record.proposal.reason


async def test_missing_model_falls_back_to_the_plan(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner], tmp_path: Path
) -> None:
    runner, planner = _policy_site(make_runner, tmp_path / "no-such-policy")
    _fell_back(await _cycles(runner, planner, 2), "policy: model missing or unusable")
    assert runner.learned is not None
    assert runner.learned.fallbacks["missing"] >= 2


async def test_a_layout_the_gateway_cannot_build_falls_back(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner], tmp_path: Path
) -> None:
    """A card from a newer trainer, whose observation this runtime does not know how to build."""
    copy = tmp_path / "newer"
    shutil.copytree(POLICY, copy)
    card = json.loads((copy / "card.json").read_text())
    card["layout"] = 3
    (copy / "card.json").write_text(json.dumps(card))
    runner, planner = _policy_site(make_runner, copy)
    _fell_back(await _cycles(runner, planner, 2), "observation layout 3; this runtime builds")
    assert runner.learned is not None
    assert runner.learned.fallbacks["missing"] >= 2


async def test_slow_model_falls_back(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner]
) -> None:
    runner, planner = _policy_site(make_runner, POLICY, policy_max_ms=1e-6)
    _fell_back(await _cycles(runner, planner, 2), "(limit 1e-06 ms)")
    assert runner.learned is not None
    assert runner.learned.fallbacks["slow"] == 2


async def test_nan_falls_back(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner], tmp_path: Path
) -> None:
    nan = write_graph_policy(tmp_path / "nan", load_card(POLICY), math.nan)
    runner, planner = _policy_site(make_runner, nan)
    _fell_back(await _cycles(runner, planner, 2), "not a number")
    assert runner.learned is not None
    assert runner.learned.fallbacks["nan"] == 2


async def test_card_mismatch_falls_back(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner], tmp_path: Path
) -> None:
    """A 15 kWh / 15 kW battery holds one hour at full power; the policy learned four."""
    copy = tmp_path / "policy"
    shutil.copytree(POLICY, copy)
    runner = make_runner(
        optimizer=REPLAY,
        controllers={"policy": f"onnx:{copy}"},
        battery={"capacity_kwh": 15, "max_charge_w": 15000, "max_discharge_w": 15000},
    )
    planner = SchedulePlanner(runner, runner.config.optimizer)
    _fell_back(await _cycles(runner, planner, 2), "card does not match the site")
    assert runner.learned is not None
    assert runner.learned.fallbacks["card"] >= 2


async def test_a_policy_trained_on_another_forecast_falls_back(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner], tmp_path: Path
) -> None:
    card = replace(load_card(POLICY), layout=2, forecaster="week-mean-ar", lag_steps=1)
    policy = write_graph_policy(tmp_path / "other", card, 0.5)
    runner, planner = _policy_site(make_runner, policy)
    _fell_back(await _cycles(runner, planner, 2), "optimizer forecasts with recent-mean-ar")
    assert runner.learned is not None
    assert runner.learned.fallbacks["card"] >= 2


async def test_no_plan_yet_means_no_policy(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner]
) -> None:
    runner, _ = _policy_site(make_runner, POLICY)
    record = await runner.step()
    assert record.proposal.controller == "idle"
    assert runner.learned is not None
    assert runner.learned.fallbacks["input"] == 1


def test_policy_needs_the_optimizer() -> None:
    with pytest.raises(ValueError, match=r"controllers\.policy needs optimizer\.enabled"):
        SiteConfig.model_validate({"id": "x", "controllers": {"policy": "onnx:p"}})


async def test_metrics_show_decisions_fallbacks_and_latency(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner]
) -> None:
    runner, planner = _policy_site(make_runner, POLICY, policy_max_ms=1000.0)
    await _cycles(runner, planner, 3)
    registry = CollectorRegistry()
    attach_policy(SimpleNamespace(sites={runner.id: runner}), registry)
    assert registry.get_sample_value("bessai_policy_decisions_total", {"site": "t1"}) == 4
    # The first cycle had no forecast yet.
    labels = {"site": "t1", "kind": "input"}
    assert registry.get_sample_value("bessai_policy_fallbacks_total", labels) == 1
    p99 = registry.get_sample_value(
        "bessai_policy_inference_ms", {"site": "t1", "quantile": "0.99"}
    )
    assert p99 is not None
    assert 0 < p99 < 1000


def test_config_check_warns_of_a_policy_that_cannot_dispatch(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text(
        "[[sites]]\n"
        'id = "a"\n'
        '[sites.optimizer]\nenabled = true\nforecaster = "recent-mean-ar"\n'
        "degradation_per_mwh = 0.0\n"
        f'[sites.controllers]\npolicy = "onnx:{POLICY}"\n'
        "[[sites]]\n"
        'id = "d"\n'
        '[sites.optimizer]\nenabled = true\nforecaster = "recent-mean-ar"\n'
        f'[sites.controllers]\npolicy = "onnx:{POLICY}"\n'
        "[[sites]]\n"
        'id = "b"\n'
        "[sites.optimizer]\nenabled = true\n"
        '[sites.controllers]\npolicy = "onnx:missing"\n'
        "[[sites]]\n"
        'id = "c"\n'
        "[sites.optimizer]\nenabled = true\n"
        f'[sites.controllers]\npolicy = "onnx:{POLICY}"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["config", "check", str(config)])
    assert result.exit_code == 0, result.output
    assert "site a: controllers.policy" not in result.stderr  # 15 kWh / 5 kW: 3 h fits
    assert "# warning: site b: controllers.policy: model missing or unusable" in result.stderr
    # Site c plans on the default week-mean; the policy reads recent-mean-ar re-made hourly.
    assert (
        "# warning: site c: controllers.policy: card does not match the site: trained on the "
        "recent-mean-ar forecast re-made at every step, the site's optimizer forecasts with "
        "week-mean; the plan dispatches instead" in result.stderr
    )
    assert "the plan dispatches instead" in result.stderr
    # Site d counts the default wear cost (from the battery's replacement cost); the policy was
    # trained without one: it still dispatches, and the operator is told.
    assert (
        "# warning: site d: controllers.policy: trained without a wear cost, the site's "
        "optimizer counts" in result.stderr
    )
    assert "site d: controllers.policy: card does not match" not in result.stderr
