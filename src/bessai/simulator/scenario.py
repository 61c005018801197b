"""Scenarios: scripted changes and wire faults for the simulator, from a YAML file.

Times are wall-clock seconds since the simulator started (faults happen on the wire, in wall
time, whatever the plant speed). Example::

    initial: {soc_pct: 60}
    unsupported: [37001, 37004]      # a firmware that refuses per-unit registers
    refuse_writes: [47087]           # ... and answers exception 4 to this write
    events:
      - {at_s: 20, set: {unit1_temp_c: 52}, duration_s: 60}
      - {at_s: 30, fault: busy, duration_s: 5}
      - {at_s: 40, fault: latency, latency_s: 2.0, duration_s: 10}
      - {at_s: 60, fault: silence, duration_s: 10}
      - {at_s: 75, fault: drop, duration_s: 3}
      - {at_s: 80, fault: exception, code: 4, duration_s: 2}
      - {at_s: 90, plant: {soc_pct: 97, ambient_c: 35}}
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from importlib import resources
from pathlib import Path
from typing import Literal, Self

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bessai.errors import BessaiError, ConfigError
from bessai.modbus.codec import encode
from bessai.simulator.server import SimulatorServer

log = structlog.get_logger("bessai.simulator")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlantChange(_Strict):
    soc_pct: float | None = Field(default=None, ge=0, le=100)
    temp_c: float | None = Field(default=None, ge=-40, le=120)
    ambient_c: float | None = Field(default=None, ge=-40, le=60, description="a hot or cold day")


class Event(_Strict):
    at_s: float = Field(ge=0)
    duration_s: float | None = Field(default=None, gt=0)
    set: dict[str, float | int | str] | None = None
    plant: PlantChange | None = None
    fault: Literal["busy", "silence", "drop", "latency", "exception"] | None = None
    latency_s: float | None = Field(default=None, gt=0)
    code: int | None = Field(default=None, ge=1, le=255)

    @model_validator(mode="after")
    def _one_action(self) -> Self:
        actions = [a for a in (self.set, self.plant, self.fault) if a is not None]
        if len(actions) != 1:
            raise ValueError("each event needs exactly one of 'set', 'plant' or 'fault'")
        if self.fault is not None and self.duration_s is None:
            raise ValueError(f"fault {self.fault!r} needs 'duration_s'")
        if self.fault == "latency" and self.latency_s is None:
            raise ValueError("fault 'latency' needs 'latency_s'")
        if self.fault != "latency" and self.latency_s is not None:
            raise ValueError("'latency_s' only applies to fault 'latency'")
        if self.fault != "exception" and self.code is not None:
            raise ValueError("'code' only applies to fault 'exception'")
        return self


class Scenario(_Strict):
    description: str = ""
    speed: float | None = Field(default=None, gt=0)
    initial: PlantChange | None = None
    unsupported: list[int] = Field(default_factory=list)
    refuse_writes: list[int] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)


BUILTIN_SCENARIOS = ("overtemperature", "faults", "soc_limits")


def scenario_path(name_or_path: str) -> Path:
    """A scenario file by path, or one shipped with the package by name."""
    if name_or_path in BUILTIN_SCENARIOS:
        return Path(str(resources.files("bessai.simulator").joinpath("scenarios"))) / (
            f"{name_or_path}.yaml"
        )
    return Path(name_or_path)


def load_scenario(path: Path) -> Scenario:
    """Read and validate a YAML scenario file; a ConfigError naming the file otherwise."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read scenario {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"scenario {path} is not valid YAML: {exc}") from None
    try:
        return Scenario.model_validate(data or {})
    except ValidationError as exc:
        lines = [f"invalid scenario {path}:"]
        for err in exc.errors():
            loc = ".".join(str(part) for part in err["loc"])
            lines.append(f"  {loc or '(top level)'}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None


def check_scenario(scenario: Scenario, server: SimulatorServer, source: str) -> None:
    """Reject point names and values the simulated device does not have, before anything runs."""
    for index, event in enumerate(scenario.events):
        for name, value in (event.set or {}).items():
            try:
                point = server.device.point(name)
                encode(point, value)
            except (KeyError, ValueError, BessaiError) as exc:
                raise ConfigError(f"scenario {source}, events.{index}.set.{name}: {exc}") from None


class ScenarioRunner:
    """Plays a scenario against a running simulator server."""

    def __init__(self, scenario: Scenario, server: SimulatorServer) -> None:
        self.scenario = scenario
        self.server = server
        self._task: asyncio.Task[None] | None = None
        self._t0 = time.monotonic()

    def start(self) -> None:
        device = self.server.device
        device.unsupported.update(self.scenario.unsupported)
        device.refused_writes.update(self.scenario.refuse_writes)
        if self.scenario.initial is not None:
            initial = self.scenario.initial
            device.plant.set_state(
                soc_pct=initial.soc_pct, temp_c=initial.temp_c, ambient_c=initial.ambient_c
            )
        self._t0 = time.monotonic()
        self._task = asyncio.create_task(self._run(), name="sim-scenario")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    async def _run(self) -> None:
        for index, event in sorted(enumerate(self.scenario.events), key=lambda e: e[1].at_s):
            delay_s = self._t0 + event.at_s - time.monotonic()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            self.apply(event, index)

    def apply(self, event: Event, index: int = 0) -> None:
        server = self.server
        now = time.monotonic()
        until = now + event.duration_s if event.duration_s is not None else float("inf")
        log.info(
            "scenario event",
            index=index,
            at_s=event.at_s,
            change=event.model_dump(exclude_none=True),
        )
        if event.set is not None:
            server.device.overrides.update(event.set)
            for name, value in event.set.items():
                server.device.set(name, value)
            if event.duration_s is not None:
                asyncio.get_running_loop().call_later(
                    event.duration_s, self._release, list(event.set)
                )
        elif event.plant is not None:
            change = event.plant
            server.device.plant.set_state(
                soc_pct=change.soc_pct, temp_c=change.temp_c, ambient_c=change.ambient_c
            )
            server.advance()
        elif event.fault == "busy":
            server.faults.busy_until = until
        elif event.fault == "silence":
            server.faults.silence_until = until
        elif event.fault == "drop":
            server.faults.drop_until = until
            server.drop_connections()
        elif event.fault == "latency":
            server.faults.latency_until = until
            server.faults.latency_s = event.latency_s or 0.0
        elif event.fault == "exception":
            server.faults.exception_until = until
            server.faults.exception_code = event.code or 4

    def _release(self, names: list[str]) -> None:
        for name in names:
            self.server.device.overrides.pop(name, None)
        self.server.advance()
