"""`bessai read`, `bessai write` and `bessai profile`: the device layer from the shell."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bessai.errors import BessaiError
from bessai.modbus.client import ClientSettings, ModbusDevice, PollResult
from bessai.modbus.codec import Value
from bessai.modbus.profile import BUILTIN_PROFILES, PollGroup, load_profile, load_profile_file

HostOpt = Annotated[str, typer.Option("--host", "-H", help="Device address.")]
PortOpt = Annotated[
    int, typer.Option("--port", "-p", help="TCP port (SDongle 502; inverter access point 6607).")
]
UnitOpt = Annotated[
    int, typer.Option("--unit", "-u", help="Modbus unit id (SDongle 1; inverter access point 0).")
]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds to wait for each answer.")]
WaitOpt = Annotated[
    float, typer.Option(help="Seconds to wait after connecting before the first request.")
]


def _settings(timeout_s: float, wait_s: float) -> ClientSettings:
    return ClientSettings(timeout_s=timeout_s, wait_after_connect_s=wait_s)


def json_value(value: Value) -> Any:
    return list(value) if isinstance(value, tuple) else value


def poll_to_json(result: PollResult) -> dict[str, Any]:
    """A poll result as a JSON document (values, units, errors per point)."""
    readings = sorted(result.readings.values(), key=lambda r: (r.point.address, r.profile))
    return {
        "requests": result.requests,
        "points": [
            {
                "address": r.point.address,
                "profile": r.profile,
                "name": r.point.name,
                "value": json_value(r.value),
                "unit": r.point.unit,
                "group": r.poll_group.value if r.poll_group else None,
                "available": r.available,
                **({"error": r.error} if r.error else {}),
            }
            for r in readings
        ],
        "errors": result.errors,
    }


def _print_table(result: PollResult, console: Console) -> None:
    # Values come from the device (model names, serial numbers, error texts): shown as text,
    # never interpreted as rich markup.
    table = Table(show_edge=False, header_style="bold")
    for column in ("address", "profile", "name", "value", "unit", "group"):
        table.add_column(column, justify="right" if column == "address" else "left")
    for r in sorted(result.readings.values(), key=lambda r: (r.point.address, r.profile)):
        if not r.available:
            shown = Text("unavailable", style="dim")
        elif r.error:
            shown = Text(f"error: {r.error}", style="red")
        elif isinstance(r.value, tuple):
            shown = Text(", ".join(r.value) or "-")
        else:
            shown = Text("-" if r.value is None else str(r.value))
        group = r.poll_group.value if r.poll_group else ""
        table.add_row(
            str(r.point.address), r.profile, r.point.name, shown, r.point.unit or "", group
        )
    console.print(table)
    unavailable = sum(1 for r in result.readings.values() if not r.available)
    console.print(
        f"{len(result.readings)} points, {unavailable} unavailable, "
        f"{result.requests} requests in {result.duration_s:.2f} s"
    )
    for error in result.errors:
        console.print(Text(error, style="red"))


def read(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 502,
    unit: UnitOpt = 1,
    profile: Annotated[
        list[str] | None,
        typer.Option(
            "--profile",
            help="Profile name or JSON file; repeat for several (default: the hybrid system's "
            "three: " + ", ".join(BUILTIN_PROFILES) + ").",
        ),
    ] = None,
    group: Annotated[
        list[PollGroup] | None,
        typer.Option(
            "--group",
            "-g",
            help="Poll group(s); default all. Only these are read, plus the static points their "
            "presence depends on (number of PV strings, second battery unit).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    timeout_s: TimeoutOpt = 5.0,
    wait_after_connect_s: WaitOpt = 1.0,
) -> None:
    """Read and decode every point of a device, with the fewest requests."""
    profiles = [load_profile(name) for name in (profile or BUILTIN_PROFILES)]

    async def run() -> PollResult:
        device = ModbusDevice(
            host, port, unit, profiles, _settings(timeout_s, wait_after_connect_s)
        )
        try:
            return await device.poll(set(group) if group else None, identify=False)
        finally:
            await device.close()

    result = asyncio.run(run())
    if as_json:
        typer.echo(json.dumps(poll_to_json(result), indent=2, ensure_ascii=False))
    else:
        _print_table(result, Console())


def _parse_value(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def write(
    point: Annotated[
        str, typer.Argument(help="Point name (or profile.point, or register address).")
    ],
    value: Annotated[str, typer.Argument(help="Value in the point's unit, or an enum label.")],
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 502,
    unit: UnitOpt = 1,
    profile: Annotated[
        list[str] | None, typer.Option("--profile", help="Profile(s) to look the point up in.")
    ] = None,
    verify: Annotated[bool, typer.Option(help="Read the point back and compare.")] = True,
    timeout_s: TimeoutOpt = 5.0,
    wait_after_connect_s: WaitOpt = 1.0,
) -> None:
    """Write one writable point after checking it against the profile's limits."""
    profiles = [load_profile(name) for name in (profile or BUILTIN_PROFILES)]
    parsed = _parse_value(value)
    if isinstance(parsed, float) and not math.isfinite(parsed):
        # float() reads nan, inf and 1e400; no register holds them. Refused before connecting.
        raise BessaiError(f"{point}: value {value!r} is not a finite number; give it in the "
                          "point's unit (e.g. 2500) or as an enum label")  # fmt: skip

    async def run() -> str:
        device = ModbusDevice(
            host, port, unit, profiles, _settings(timeout_s, wait_after_connect_s)
        )
        try:
            result = await device.write_point(point, parsed, verify=verify)
        finally:
            await device.close()
        where = f"{result.profile}.{result.point.name} (register {result.point.address})"
        check = f", read back {json_value(result.read_back)!r}" if result.verified else ""
        return (
            f"wrote {value} {result.point.unit or ''} to {where} with FC{result.function_code:02d}"
            f" {list(result.registers)}{check}"
        ).replace("  ", " ")

    typer.echo(asyncio.run(run()))


profile_app = typer.Typer(help="Inspect and validate register profiles.", no_args_is_help=True)


@profile_app.command("list")
def profile_list() -> None:
    """List the built-in profiles."""
    for name in BUILTIN_PROFILES:
        prof = load_profile(name)
        typer.echo(f"{name:18} {len(prof.points):4} points  {prof.description}")


@profile_app.command("show")
def profile_show(
    name: Annotated[str, typer.Argument(help="Built-in profile name or JSON file.")],
) -> None:
    """Print every point of a profile."""
    prof = load_profile(name)
    table = Table(title=f"{prof.name}: {prof.description}", show_edge=False)
    for column in ("address", "name", "type", "len", "gain", "unit", "access", "group", "limits"):
        table.add_column(column)
    for p in prof.points:
        limits = ""
        if p.min is not None or p.max is not None:
            limits = f"{p.min:g}..{p.max:g}" + (f" (<= {p.max_point})" if p.max_point else "")
        elif p.enum and p.writable:
            limits = ", ".join(f"{k}={v}" for k, v in p.enum.items())
        table.add_row(
            str(p.address),
            p.name,
            p.type.value,
            str(p.length),
            f"{p.gain:g}",
            p.unit or "",
            p.access.value,
            p.group.value if p.group else "-",
            limits,
        )
    Console().print(table)


@profile_app.command("check")
def profile_check(path: Annotated[Path, typer.Argument(help="Profile JSON file.")]) -> None:
    """Validate a profile file; errors name the register and field."""
    prof = load_profile_file(path)
    typer.echo(f"{path}: ok ({prof.name}, {len(prof.points)} points, {len(prof.blocks)} blocks)")


def register(app: typer.Typer) -> None:
    """Add `bessai read`, `bessai write` and `bessai profile`."""
    app.command()(read)
    app.command()(write)
    app.add_typer(profile_app, name="profile")


__all__ = ["BessaiError", "poll_to_json", "register"]
