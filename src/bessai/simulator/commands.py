"""`bessai sim`: serve a simulated SUN2000 + LUNA2000 + meter over Modbus TCP."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Annotated

import typer

from bessai.logging import configure_logging
from bessai.simulator.device import SimulatedHybrid
from bessai.simulator.plant import PhysicsPlant, PlantConfig
from bessai.simulator.scenario import (
    BUILTIN_SCENARIOS,
    ScenarioRunner,
    check_scenario,
    load_scenario,
    scenario_path,
)
from bessai.simulator.server import SimulatorServer


def sim(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on (0 = any free port).")] = 5020,
    speed: Annotated[
        float, typer.Option(help="Plant time runs this many times faster than wall time.")
    ] = 1.0,
    scenario: Annotated[
        str | None,
        typer.Option(
            help="YAML scenario of scripted changes and faults, or a built-in one: "
            + ", ".join(BUILTIN_SCENARIOS)
            + "."
        ),
    ] = None,
    unit_ids: Annotated[
        str, typer.Option(help="Comma-separated unit ids to answer (others time out).")
    ] = "0,1",
    soc_pct: Annotated[float, typer.Option(help="Initial battery SOC.", min=0, max=100)] = 50.0,
    multi_client: Annotated[
        bool,
        typer.Option(help="Serve several TCP clients at once (a real device keeps only one)."),
    ] = False,
    log_level: Annotated[
        str, typer.Option(help="Simulator log level: debug, info, warning or error.")
    ] = "info",
) -> None:
    """Serve a SUN2000 + LUNA2000 + meter on Modbus TCP until interrupted."""
    configure_logging(log_level)
    try:
        units = tuple(int(u) for u in unit_ids.split(",") if u.strip())
    except ValueError:
        raise typer.BadParameter(
            f"not a list of integers: {unit_ids!r}", param_hint="--unit-ids"
        ) from None
    loaded = load_scenario(scenario_path(scenario)) if scenario is not None else None
    if loaded is not None and loaded.speed is not None and speed == 1.0:
        speed = loaded.speed

    async def run() -> None:
        plant = PhysicsPlant(PlantConfig(initial_soc_pct=soc_pct), now=datetime.now(UTC))
        server = SimulatorServer(
            SimulatedHybrid(plant), host, port, units, speed=speed, single_client=not multi_client
        )
        runner = None
        if loaded is not None:
            check_scenario(loaded, server, str(scenario))
        await server.start()
        typer.echo(
            f"simulator on {host}:{server.port}, unit ids {', '.join(map(str, units))}, "
            f"speed x{speed:g}; read it with: bessai read --host {host} --port {server.port}"
        )
        if loaded is not None:
            runner = ScenarioRunner(loaded, server)
            runner.start()
        try:
            await asyncio.Event().wait()
        finally:
            if runner is not None:
                await runner.stop()
            await server.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


def register(app: typer.Typer) -> None:
    """Add `bessai sim`."""
    app.command()(sim)
