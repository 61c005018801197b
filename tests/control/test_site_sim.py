"""The cycle against the simulator over loopback TCP: safety blocks within one cycle, the
fail-safe on stale data and its recovery, the restart hazard, and the audit trail."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bessai.config import Config
from bessai.control.audit import AuditLog
from bessai.control.safety import Outcome, SafetyState
from bessai.control.site import SiteRunner
from bessai.runtime.service import Runtime
from bessai.simulator.scenario import Event, Scenario, ScenarioRunner
from bessai.simulator.server import SimulatorServer

from .conftest import site_config


def now() -> datetime:
    return datetime.now(UTC)


async def test_manual_charge_reaches_the_device_clamped_to_its_limits(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner], audit: AuditLog
) -> None:
    runner = make_runner()
    await runner.step()
    runner.override.set(9000, now(), 60, "test")
    record = await runner.step()
    assert record.decision.outcome is Outcome.CLAMPED
    assert record.decision.setpoint_w == 5000
    device = sim.device
    assert device.raw("forcible_charge_power_w") == 5000  # never the unsafe 9000
    assert device.get("forcible_command") == "charge"
    assert device.get("forcible_period_min") == 2
    assert device.get("forcible_mode") == "time (47083)"
    rows = audit.query(site="t1")
    assert rows[0]["outcome"] == "clamped"
    assert rows[0]["binding_limit"].startswith("battery.max_charge_w")
    written = {w["address"] for w in rows[0]["writes"]}
    assert {47247, 47083, 47100} <= written
    assert all(w["verified"] for w in rows[0]["writes"])
    # Unchanged setpoint: nothing is rewritten until the refresh is due.
    again = await runner.step()
    assert again.writes == ()
    runner.override.clear()
    stopped = await runner.step()
    assert [w.address for w in stopped.writes] == [47100]
    assert device.get("forcible_command") == "stop"


async def test_over_temperature_is_blocked_within_one_cycle(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner]
) -> None:
    runner = make_runner()
    runner.override.set(-3000, now(), 60, "test discharge")
    first = await runner.step()
    assert first.decision.outcome is Outcome.ALLOWED
    assert sim.device.get("forcible_command") == "discharge"
    scenario = ScenarioRunner(Scenario(events=[Event(at_s=0, set={"unit1_temp_c": 52.0})]), sim)
    scenario.start()
    await asyncio.sleep(0.05)
    hot = await runner.step()
    assert hot.decision.outcome is Outcome.BLOCKED
    assert "52.0 °C" in hot.decision.reason
    assert hot.safety_state is SafetyState.LIMITED
    assert sim.device.get("forcible_command") == "stop"  # stopped in the same cycle
    assert runner.counters.blocks == 1
    await scenario.stop()


async def test_soc_at_the_limit_blocks_that_direction_only(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner]
) -> None:
    sim.device.plant.set_state(soc_pct=98.5)
    runner = make_runner()
    runner.override.set(2000, now(), 60, "charge")
    record = await runner.step()
    assert record.decision.outcome is Outcome.BLOCKED
    assert "SOC 98.5 %" in record.decision.reason
    assert sim.device.get("forcible_command") == "stop"
    runner.override.set(-2000, now(), 60, "discharge")
    record = await runner.step()
    assert record.decision.outcome is Outcome.ALLOWED
    assert sim.device.get("forcible_command") == "discharge"


async def test_silent_device_puts_the_site_in_safe_then_it_recovers(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner]
) -> None:
    runner = make_runner()
    runner.override.set(-2000, now(), 60, "discharge")
    assert (await runner.step()).safety_state is SafetyState.NORMAL
    scenario = ScenarioRunner(
        Scenario(events=[Event(at_s=0, fault="silence", duration_s=2.5)]), sim
    )
    scenario.start()
    started = asyncio.get_running_loop().time()
    states = []
    while asyncio.get_running_loop().time() - started < 2.4:
        record = await runner.step()
        states.append(
            (
                asyncio.get_running_loop().time() - started,
                record.safety_state,
                record.data_age_s,
                record.measurements.soc_pct,
                record.errors,
            )
        )
    safe_at = [t for t, s, *_ in states if s is SafetyState.SAFE]
    assert safe_at, states
    # SAFE within the staleness timeout (1 s) plus one cycle's worth of timeouts.
    assert safe_at[0] <= 1.0 + 1.2, states
    await asyncio.sleep(0.2)
    recovered = None
    for _ in range(10):
        record = await runner.step()
        if record.safety_state is not SafetyState.SAFE:
            recovered = record
            break
    assert recovered is not None
    assert recovered.decision.outcome is Outcome.ALLOWED
    await scenario.stop()


async def test_restart_stops_a_forcible_discharge_it_finds(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner], audit: AuditLog
) -> None:
    from bessai.modbus.codec import encode

    device = sim.device
    for name, value in [
        ("forcible_discharge_power_w", 3000),
        ("forcible_period_min", 60),
        ("forcible_command", 2),
    ]:
        point = device.point(name)
        assert device.write(point.address, encode(point, value)) is None
    runner = make_runner()
    record = await runner.step()
    assert device.get("forcible_command") == "stop"
    assert record.proposal.controller == "idle"
    row = audit.query(site="t1")[0]
    assert row["reason"] == "stopped a forcible discharge found at start that no decision justifies"


async def test_start_aligns_the_inverter_cutoffs_with_the_safety_limits(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner]
) -> None:
    runner = make_runner(safety={"soc_min_pct": 10.0, "soc_max_pct": 95.0})
    await runner.step()
    assert sim.device.get("charge_cutoff_soc_pct") == 95.0
    assert sim.device.get("discharge_cutoff_soc_pct") == 10.0


async def test_health_and_metrics_show_a_block(sim: SimulatorServer, tmp_path: object) -> None:
    from pathlib import Path

    from bessai.api.app import create_app

    site = site_config(sim.port).model_dump()
    config = Config.model_validate(
        {"gateway": {"data_dir": str(Path(str(tmp_path)) / "gw")}, "sites": [site]}
    )
    runtime = Runtime(config)
    await runtime.start()
    try:
        runner = runtime.gateway.sites["t1"]
        sim.device.overrides["unit1_temp_c"] = 50.0
        runner.override.set(-2000, now(), 60, "discharge")
        for _ in range(50):
            await asyncio.sleep(0.1)
            # The block is counted mid-cycle; health reads the cycle's record, published at
            # its end.
            record = runner.last
            if record is not None and record.decision.outcome.value == "blocked":
                break
        transport = httpx.ASGITransport(app=create_app(runtime.monitor))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            health = await client.get("/health")
            metrics = await client.get("/metrics")
        assert health.status_code == 503
        body = health.json()
        assert body["sites"]["t1"]["safety"]["state"] == "limited"
        assert any("50.0 °C" in r for r in body["sites"]["t1"]["safety"]["reasons"])
        text = metrics.text
        assert 'bessai_safety_blocks_total{site="t1"}' in text
        assert 'bessai_safety_state{site="t1"} 1.0' in text
        assert "bessai_modbus_requests_total" in text
        assert "bessai_cycle_duration_seconds_bucket" in text
    finally:
        await runtime.stop()


async def test_audit_cli_shows_the_commands(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner], audit: AuditLog
) -> None:
    import json
    import subprocess
    import sys

    runner = make_runner()
    runner.override.set(-1500, now(), 60, "operator test")
    await runner.step()
    base = [sys.executable, "-m", "bessai.cli", "audit", "--data-dir", str(audit.path.parent)]
    out = await asyncio.to_thread(
        subprocess.run, [*base, "--json", "--site", "t1"], capture_output=True, text=True
    )
    rows = json.loads(out.stdout)
    assert rows[0]["controller"] == "manual"
    assert rows[0]["requested_w"] == -1500
    assert rows[0]["outcome"] == "allowed"
    table = await asyncio.to_thread(
        subprocess.run, [*base, "--outcome", "allowed"], capture_output=True, text=True,
        env={"COLUMNS": "250", "PATH": ""},
    )  # fmt: skip
    assert "operator test" in table.stdout
    missing = await asyncio.to_thread(
        subprocess.run, [*base[:4], "--data-dir", "/nonexistent"], capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert "no audit log at /nonexistent/audit.sqlite" in missing.stderr


async def test_a_refused_charge_from_grid_write_does_not_block_charging(
    sim: SimulatorServer, make_runner: Callable[..., SiteRunner]
) -> None:
    sim.device.refused_writes.add(47087)  # exception 4, as some firmware answers
    runner = make_runner()
    runner.override.set(2000, now(), 60, "charge")
    record = await runner.step()
    assert record.safety_state is SafetyState.NORMAL
    assert sim.device.get("forcible_command") == "charge"
    assert sim.device.get("charge_from_grid") == "disabled"
    again = await runner.step()
    assert all(w.address != 47087 for w in again.writes)  # not retried every cycle


async def test_every_cycle_is_a_span(
    make_runner: Callable[..., SiteRunner], span_exporter: InMemorySpanExporter
) -> None:
    runner = make_runner()
    await runner.step()
    spans = [s for s in span_exporter.get_finished_spans() if s.name == "cycle"]
    assert spans
    attributes = spans[-1].attributes or {}
    assert attributes["site"] == "t1"
    assert attributes["safety_state"] == "normal"
