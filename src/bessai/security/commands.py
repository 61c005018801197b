"""`bessai attack`: run real attacks against a simulator on this machine (loopback only), each
logged as ground truth (id, type, start, end) to measure the security monitor."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from bessai.errors import BessaiError
from bessai.security.attack.groundtruth import AttackLog, AttackRecord
from bessai.security.attack.mitm import KINDS, TARGETS, MitmProxy
from bessai.security.attack.rogue import INJECTIONS, Target, flood, inject, recon

Host = Annotated[str, typer.Option(help="The simulator's address (loopback only).")]
Port = Annotated[int, typer.Option(help="The simulator's Modbus TCP port.")]
Unit = Annotated[int, typer.Option(help="Modbus unit id.")]
Log = Annotated[
    Path | None, typer.Option(help="Append the ground truth (one JSON line per attack) here.")
]
Seed = Annotated[int, typer.Option(help="Seed of the attack's random choices.")]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _log(path: Path | None, kind: str, start: str, params: dict[str, object]) -> None:
    log = AttackLog(path)
    record = AttackRecord(int(datetime.now(UTC).timestamp() * 1000), kind, start, _now(), params)
    log.add(record)
    typer.echo(f"attack {record.id} {kind} {record.start} -> {record.end} {params}")


def inject_command(
    kind: Annotated[str, typer.Argument(help="What to write: " + ", ".join(INJECTIONS) + ".")],
    host: Host = "127.0.0.1",
    port: Port = 5020,
    unit: Unit = 1,
    log: Log = None,
) -> None:
    """Command injection from a rogue client: write the battery's control registers."""
    start = _now()
    sent = asyncio.run(inject(Target(host, port, unit), kind))
    _log(log, "command_injection", start, {"injection": kind, "writes": sent})


def recon_command(
    host: Host = "127.0.0.1", port: Port = 5020, unit: Unit = 1, seed: Seed = 0, log: Log = None
) -> None:
    """Reconnaissance: device identification, then an address sweep."""
    start = _now()
    requests = asyncio.run(recon(Target(host, port, unit), random.Random(seed)))
    _log(log, "recon", start, {"requests": requests, "seed": seed})


def flood_command(
    host: Host = "127.0.0.1",
    port: Port = 5020,
    unit: Unit = 1,
    requests: Annotated[int, typer.Option(help="Requests in all.", min=1)] = 1000,
    connections: Annotated[int, typer.Option(help="Connections at once.", min=1, max=64)] = 3,
    log: Log = None,
) -> None:
    """Flooding: many reads at once from several connections."""
    start = _now()
    sent = asyncio.run(flood(Target(host, port, unit), requests, connections))
    _log(log, "flooding", start, {"requests": sent, "connections": connections})


def mitm_command(
    kind: Annotated[str, typer.Argument(help="Falsification: " + ", ".join(KINDS) + ".")],
    target: Annotated[str, typer.Option(help="Reading: " + ", ".join(TARGETS) + ".")] = "soc",
    amount: Annotated[
        float, typer.Option(help="bias: added; scale: factor; ramp: added per second.")
    ] = 5.0,
    port: Port = 5020,
    listen: Annotated[int, typer.Option(help="Port the gateway connects to instead.")] = 5021,
    start_after_s: Annotated[float, typer.Option(help="Pass through this long first.")] = 60.0,
    duration_s: Annotated[float, typer.Option(help="Falsify this long, then exit.")] = 60.0,
    log: Log = None,
) -> None:
    """A man-in-the-middle between gateway and simulator (on 127.0.0.1) that falsifies
    readings for a while."""
    host = "127.0.0.1"
    if kind not in KINDS or target not in TARGETS:
        raise BessaiError(f"unknown falsification {kind!r} or target {target!r}")

    async def run() -> str:
        proxy = MitmProxy((host, port), listen)
        await proxy.start()
        typer.echo(f"relaying 127.0.0.1:{proxy.port} -> {host}:{port}")
        try:
            await asyncio.sleep(start_after_s)
            start = _now()
            proxy.start_attack(kind, target, amount)
            await asyncio.sleep(duration_s)
            proxy.stop_attack()
            return start
        finally:
            await proxy.stop()

    start = asyncio.run(run())
    _log(log, f"fdi_{kind}", start, {"target": target, "amount": amount})


def attack_app() -> typer.Typer:
    """The `attack` command group."""
    attack = typer.Typer(
        help="Attacks against a simulator on this machine, to measure the security monitor.",
        no_args_is_help=True,
        add_completion=False,
    )
    attack.command("inject")(inject_command)
    attack.command("recon")(recon_command)
    attack.command("flood")(flood_command)
    attack.command("mitm")(mitm_command)
    return attack


def register(app: typer.Typer) -> None:
    """Add `bessai attack`."""
    app.add_typer(attack_app(), name="attack")
