"""Security monitor: detection measured against attacks actually run on the simulator.

A seeded campaign. One site cycles (5 s of plant time per cycle, the plant stepped by the
benchmark so it runs at speed) against the simulator through a man-in-the-middle proxy that
passes answers through until told to falsify them. A benign driver changes the battery setpoint
at random. The monitor trains on the first `TRAIN_H` hours, then `BENIGN_H` hours of benign
operation measure the false alarms, then `PER_TYPE` attacks of each type run one after another
with benign gaps, each logged as ground truth (id, type, start, end cycle):

- `command_injection`: a rogue client writes the battery's control registers (forcible charge or
  discharge, working mode, limits, cutoffs) on a device that serves several clients, so the
  write is invisible on the wire to the gateway: only the re-read can see it;
- `connection_theft`: a rogue client identifies the device and sweeps addresses on a device that
  serves one client (as Huawei's do), taking the gateway's connection;
- `flooding`: three rogue connections reading as fast as the device answers;
- `fdi_bias`, `fdi_scale`, `fdi_ramp`, `fdi_stuck`: the proxy falsifies SOC, battery power or PV
  power;
- `replay`: the proxy answers every read with the answers recorded in the last 60 cycles;
- `stealthy`: a bias on the grid meter, which no invariant ties (reported, no target).

Figures per type: event-level recall (any alert from the start to `GRACE` cycles after the end)
and the median cycles to the first alert; false alarms per 24 h of benign operation (alert
episodes outside every attack window); the time the monitor adds to a cycle (p50/p99).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bessai.config import SiteConfig
from bessai.control.audit import AuditLog
from bessai.control.site import SiteRunner
from bessai.control.watch import SecurityAssessment
from bessai.devices.base import Acquisition
from bessai.devices.registry import open_device
from bessai.modbus.client import ClientSettings
from bessai.security.attack.groundtruth import AttackLog, AttackRecord
from bessai.security.attack.mitm import MitmProxy
from bessai.security.attack.rogue import INJECTIONS, Target, flood, inject, recon
from bessai.security.monitor import SecurityMonitor
from bessai.security.wiring import attach
from bessai.simulator.device import SimulatedHybrid
from bessai.simulator.plant import PhysicsPlant, PlantConfig
from bessai.simulator.server import SimulatorServer

SEED = 17
CYCLE_S = 5.0
TRAIN_H = 6.0
BENIGN_H = 24.0
PER_TYPE = 20
ATTACK_CYCLES = 30
#: a frozen value matters only once the plant moves away from it: stuck attacks last longer
STUCK_CYCLES = 90
GAP_CYCLES = 50
GRACE = 5
#: after an attack ends, its after-effects (a falsified SOC snapping back, SAFE released) may
#: still raise alerts while the residual windows flush: not counted as false alarms
AFTERMATH = 25
#: an injection that moved its target less than this changed nothing (a value frozen at its
#: true level while the plant stands still): reported, but left out of `recall_effective`
EFFECT = {"soc": 0.5, "battery_power": 100.0, "pv_power": 100.0, "grid_power": 100.0}
START = datetime(2026, 1, 15, 16, 0, tzinfo=UTC)  # 13:00 in Santiago
SETTINGS = ClientSettings(
    wait_after_connect_s=0.02,
    cooldown_s=0.0,
    timeout_s=0.5,
    retries=2,
    retry_backoff_s=0.02,
    retry_backoff_max_s=0.1,
    reconnect_backoff_s=0.05,
    reconnect_backoff_max_s=0.2,
)
TYPES = (
    "command_injection",
    "connection_theft",
    "flooding",
    "fdi_bias",
    "fdi_scale",
    "fdi_ramp",
    "fdi_stuck",
    "replay",
    "stealthy",
)
TARGETS = {"command_injection": 0.95, "connection_theft": 0.95, "replay": 0.9}
TARGETS.update({t: 0.9 for t in TYPES if t.startswith("fdi_")})


class TimedAssessor:
    """The monitor with its time per cycle measured (what it adds to the cycle)."""

    def __init__(self, monitor: SecurityMonitor) -> None:
        self.monitor = monitor
        self.durations_s: list[float] = []
        #: the same without the re-read's I/O: the monitor's own computing
        self.compute_s: list[float] = []
        #: the monitor's own CPU time (thread time, re-read excluded): what the load of the
        #: machine cannot inflate
        self.compute_cpu_s: list[float] = []

    async def assess(self, cycle: int, acquired: Acquisition) -> SecurityAssessment:
        """Time the monitor's assessment."""
        started, started_cpu = time.perf_counter(), time.thread_time()
        result = await self.monitor.assess(cycle, acquired)
        total_s = time.perf_counter() - started
        cpu_s = time.thread_time() - started_cpu - self.monitor.foreign.last_reread_cpu_s
        self.compute_cpu_s.append(max(0.0, cpu_s))
        self.durations_s.append(total_s)
        self.compute_s.append(max(0.0, total_s - self.monitor.foreign.last_reread_s))
        return result

    def status(self) -> Mapping[str, object]:
        """The monitor's status."""
        return self.monitor.status()


@dataclass(slots=True)
class Campaign:
    """One seeded run: the plant, the proxy, the site, and what the monitor said when."""

    sim: SimulatorServer
    mitm: MitmProxy
    runner: SiteRunner
    timed: TimedAssessor
    rng: random.Random
    cycle: int = 0
    alerts: list[tuple[int, str, str]] = field(default_factory=list)
    truth: AttackLog = field(default_factory=AttackLog)
    cycle_durations_s: list[float] = field(default_factory=list)
    _next_change: int = 0

    @property
    def target(self) -> Target:
        return Target("127.0.0.1", self.sim.port, 1)

    async def step(self) -> None:
        """One cycle: plant time moves 5 s, the benign driver may change the setpoint."""
        device = self.sim.device
        device.advance(device.now + timedelta(seconds=CYCLE_S))
        if self.cycle >= self._next_change:
            self._benign_change()
        record = await self.runner.step()
        self.cycle = record.cycle
        self.cycle_durations_s.append(record.duration_s)
        if record.security is not None:
            self.alerts.extend((record.cycle, a.kind, a.check) for a in record.security.alerts)

    def _benign_change(self) -> None:
        self._next_change = self.cycle + self.rng.randint(20, 150)
        choice = self.rng.random()
        if choice < 0.3:
            self.runner.override.clear()  # idle: the inverter's self-consumption mode
            return
        setpoint_w = self.rng.uniform(500, 4500) * (1 if choice < 0.65 else -1)
        self.runner.override.set(setpoint_w, datetime.now(UTC), 3000, "benchmark driver")

    async def steps(self, n: int) -> None:
        """Run `n` cycles."""
        for _ in range(n):
            await self.step()


def _site(port: int, train_cycles: int) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "id": "bench",
            "cycle_s": CYCLE_S,
            "slow_every": 12,
            "devices": [{"host": "127.0.0.1", "port": port, "timeout_s": 0.5,
                         "wait_after_connect_s": 0.0, "cooldown_s": 0.0, "retries": 2}],
            "battery": {"capacity_kwh": 15, "max_charge_w": 5000, "max_discharge_w": 5000},
            "safety": {"stale_after_s": 15.0, "recovery_cycles": 3},
            "dispatch": {"forcible_period_min": 60, "refresh_s": 5},
            "controllers": {"manual_override_max_s": 3600},
            "security": {"train_cycles": train_cycles, "seed": SEED},
        }
    )  # fmt: skip


def _amount(kind: str, target: str, rng: random.Random) -> float:
    sign = rng.choice((-1.0, 1.0))
    if kind == "bias":
        return sign * (rng.uniform(3, 10) if target == "soc" else rng.uniform(400, 1500))
    if kind == "scale":
        return rng.uniform(1.2, 1.6) if sign > 0 else rng.uniform(0.5, 0.8)
    if kind == "ramp":  # per second of plant time
        return sign * (rng.uniform(0.01, 0.04) if target == "soc" else rng.uniform(3, 10))
    return 0.0


def _fdi_target(c: Campaign, kind: str) -> str:
    """A reading worth falsifying now: scaling or freezing a zero changes nothing."""
    m = c.runner.last.measurements if c.runner.last is not None else None
    live = ["soc"]
    if m is not None and m.battery_power_w:
        live.append("battery_power")
    if m is not None and m.pv_power_w:
        live.append("pv_power")
    if kind in ("scale", "stuck"):
        return c.rng.choice(live)
    return c.rng.choice(["soc", "battery_power", "pv_power"])


async def _attack(c: Campaign, attack_id: int, kind: str) -> None:
    start = c.cycle + 1
    params: dict[str, Any] = {}
    if kind == "command_injection":
        c.sim.single_client = False  # the write is invisible to the gateway on the wire
        params["injection"] = c.rng.choice(sorted(INJECTIONS))
        await inject(c.target, params["injection"])
        c.sim.single_client = True
        end = start
    elif kind == "connection_theft":
        params["requests"] = await recon(c.target, c.rng)
        end = start
    elif kind == "flooding":
        task = asyncio.create_task(flood(c.target, requests=150, connections=3))
        n = 0
        while not task.done() and n < ATTACK_CYCLES:
            await c.step()
            n += 1
        params["requests"] = await task
        end = c.cycle
    else:
        fdi = "bias" if kind == "stealthy" else kind.removeprefix("fdi_")
        target = "grid_power" if kind == "stealthy" else _fdi_target(c, fdi)
        amount = (
            c.rng.choice((-1, 1)) * c.rng.uniform(500, 2000)
            if kind == "stealthy"
            else _amount(fdi, target, c.rng)
        )
        params = {"target": target, "amount": round(amount, 4)}
        c.mitm.start_attack("replay" if kind == "replay" else fdi, target, amount)
        await c.steps(STUCK_CYCLES if kind == "fdi_stuck" else ATTACK_CYCLES)
        c.mitm.stop_attack()
        if kind != "replay":
            params["max_deviation"] = round(c.mitm.max_deviation, 3)
            params["effective"] = c.mitm.max_deviation >= EFFECT[target]
        end = c.cycle
    if kind in ("command_injection", "connection_theft"):
        await c.steps(1)
    c.truth.add(AttackRecord(attack_id, kind, start, end, params))
    await c.steps(GAP_CYCLES)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _episodes(cycles: list[int], gap: int = 10) -> int:
    """Alert cycles merged into episodes (an ongoing condition is one false alarm)."""
    count, last = 0, None
    for cycle in sorted(set(cycles)):
        if last is None or cycle - last > gap:
            count += 1
        last = cycle
    return count


def score(c: Campaign, benign: tuple[int, int]) -> dict[str, Any]:
    """Recall, time to detect, false alarms and cost from the ground truth and the alerts."""
    per_type: dict[str, Any] = {}
    windows = [(r.start, r.end + AFTERMATH) for r in c.truth.records]
    for kind in TYPES:
        records = [r for r in c.truth.records if r.type == kind]
        delays = []
        detected_by: dict[str, int] = {}
        for r in records:
            hits = [a for a in c.alerts if r.start <= a[0] <= r.end + GRACE]
            if hits:
                first = min(hits)
                delays.append(first[0] - r.start + 1)
                detected_by[first[1]] = detected_by.get(first[1], 0) + 1
        recall = len(delays) / len(records) if records else None
        effective = [r for r in records if r.params.get("effective", True)]
        hit = [r for r in effective if any(r.start <= a[0] <= r.end + GRACE for a in c.alerts)]
        per_type[kind] = {
            "attacks": len(records),
            "recall": None if recall is None else round(recall, 3),
            "effective_attacks": len(effective),
            "recall_effective": round(len(hit) / len(effective), 3) if effective else None,
            "median_cycles_to_detect": statistics.median(delays) if delays else None,
            "first_alert_kinds": detected_by,
            "target_recall": TARGETS.get(kind),
        }
    lo, hi = benign
    benign_alerts = [a[0] for a in c.alerts if lo <= a[0] < hi]
    gap_alerts = [
        a[0] for a in c.alerts if a[0] >= hi and not any(s <= a[0] <= e for s, e in windows)
    ]
    gap_cycles = (c.cycle - hi + 1) - sum(e - s + 1 for s, e in windows)
    benign_days = (hi - lo) * CYCLE_S / 86_400
    # Cost over the benign cycles (an attack adds restores and alerts, rare by design).
    durations_ms = [d * 1000 for d in c.timed.durations_s[lo - 1 : hi - 1]]
    compute_ms = [d * 1000 for d in c.timed.compute_s[lo - 1 : hi - 1]]
    cpu_ms = [d * 1000 for d in c.timed.compute_cpu_s[lo - 1 : hi - 1]]
    return {
        "per_type": per_type,
        "benign_hours": round((hi - lo) * CYCLE_S / 3600, 1),
        "false_alarms_per_24h": round(_episodes(benign_alerts) / benign_days, 2),
        "false_alarm_checks": dict(Counter(a[2] for a in c.alerts if lo <= a[0] < hi)),
        "gap_false_alarm_checks": dict(
            Counter(
                a[2] for a in c.alerts if a[0] >= hi and not any(s <= a[0] <= e for s, e in windows)
            )
        ),
        "gap_false_alarms_per_24h": round(
            _episodes(gap_alerts) / max(1e-9, gap_cycles * CYCLE_S / 86_400), 2
        ),
        "added_cycle_ms_p50": round(_pct(durations_ms, 0.5), 3),
        "added_cycle_ms_p99": round(_pct(durations_ms, 0.99), 3),
        "compute_ms_p50": round(_pct(compute_ms, 0.5), 3),
        "compute_ms_p99": round(_pct(compute_ms, 0.99), 3),
        "compute_cpu_ms_p50": round(_pct(cpu_ms, 0.5), 3),
        "compute_cpu_ms_p99": round(_pct(cpu_ms, 0.99), 3),
        "cycle_ms_p99": round(
            _pct([d * 1000 for d in c.cycle_durations_s[lo - 1 : hi - 1]], 0.99), 3
        ),
        "target_false_alarms_per_24h": 1.0,
    }


async def campaign(
    train_h: float = TRAIN_H, benign_h: float = BENIGN_H, per_type: int = PER_TYPE
) -> dict[str, Any]:
    """The whole seeded campaign; returns the scored figures."""
    rng = random.Random(SEED)
    plant = PhysicsPlant(PlantConfig(initial_soc_pct=50.0, seed=SEED), now=START)
    sim = SimulatorServer(SimulatedHybrid(plant, start=START), port=0, speed=0.0)
    await sim.start()
    mitm = MitmProxy(("127.0.0.1", sim.port), clock=lambda: sim.device.now.timestamp())
    await mitm.start()
    train_cycles = int(train_h * 3600 / CYCLE_S)
    with tempfile.TemporaryDirectory() as tmp:
        audit = AuditLog(Path(tmp) / "audit.sqlite")
        config = _site(mitm.port, train_cycles)
        runner = SiteRunner(config, open_device(config, SETTINGS), audit)
        monitor = attach(runner, clock=lambda: sim.device.now.timestamp())
        assert monitor is not None
        timed = TimedAssessor(monitor)
        runner.assessor = timed
        c = Campaign(sim, mitm, runner, timed, rng)
        started = time.perf_counter()
        try:
            await c.steps(train_cycles + 2)
            benign_start = c.cycle + 1
            await c.steps(int(benign_h * 3600 / CYCLE_S))
            benign_end = c.cycle + 1
            kinds = [k for k in TYPES for _ in range(per_type)]
            rng.shuffle(kinds)
            for attack_id, kind in enumerate(kinds, 1):
                await _attack(c, attack_id, kind)
            result = score(c, (benign_start, benign_end))
        finally:
            await runner.device.close()
            audit.close()
            await mitm.stop()
            await sim.stop()
    result.update(
        reread_requests_per_cycle=round(monitor.foreign.rereads / max(1, c.cycle), 3),
        load_average_1m=round(os.getloadavg()[0], 1),
        seed=SEED,
        cycles=c.cycle,
        train_hours=train_h,
        wall_s=round(time.perf_counter() - started, 1),
        tolerances=monitor.tolerances.as_dict(),
        threshold=monitor.scorer.threshold,
    )
    return result


def run() -> dict[str, Any]:
    """The benchmark entry point (`python -m bench security`)."""
    return asyncio.run(campaign())
