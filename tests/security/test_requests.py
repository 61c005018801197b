"""Sweeps and write bursts of other clients, as the Modbus proxy reports their requests."""

from __future__ import annotations

from bessai.security.requests import RequestWatch

BLOCKS = [(37000, 37070), (47000, 47110)]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_client_polling_the_profile_is_not_a_sweep() -> None:
    clock = Clock()
    watch = RequestWatch(BLOCKS, clock)
    for _ in range(60):
        clock.t += 1
        watch.observe("10.0.0.5", 3, 37000, 70)
        watch.observe("10.0.0.5", 3, 47000, 110)
    assert watch.drain() == []


def test_reads_outside_the_profile_are_a_sweep_once() -> None:
    clock = Clock()
    watch = RequestWatch(BLOCKS, clock)
    for address in range(40000, 40080, 4):
        clock.t += 0.1
        watch.observe("10.0.0.9", 3, address, 4)
    alerts = watch.drain()
    assert [a.kind for a in alerts] == ["sweep"]
    assert alerts[0].evidence["client"] == "10.0.0.9"


def test_a_write_burst() -> None:
    clock = Clock()
    watch = RequestWatch(BLOCKS, clock)
    for _ in range(12):
        clock.t += 0.5
        watch.observe("10.0.0.9", 6, 47100, 1)
    assert [a.kind for a in watch.drain()] == ["write_burst"]
