"""Protocol checks from the client's own counters: connection theft, even when the theft made a
whole read fail; an outage is not a theft; unexpected exceptions."""

from __future__ import annotations

from bessai.modbus.results import ClientStats
from bessai.security.protocol import ProtocolWatch


def warmed(stats: ClientStats) -> ProtocolWatch:
    watch = ProtocolWatch(stats)
    stats.reconnects = 1
    for cycle in (1, 2):
        assert watch.check(cycle, answering=True, now_s=cycle) == []
    return watch


def test_a_reconnect_we_did_not_cause_is_a_theft() -> None:
    stats = ClientStats()
    watch = warmed(stats)
    stats.reconnects += 1  # the device closed us between two cycles
    alerts = watch.check(3, answering=True, now_s=3)
    assert [a.kind for a in alerts] == ["connection_theft"]
    stats.reconnects += 1
    stats.connection_drops += 1  # our own drop after a timeout: not a theft
    stats.timeouts += 1
    assert watch.check(4, answering=True, now_s=4) == []


def test_a_theft_that_failed_the_read_is_reported_when_the_device_answers() -> None:
    stats = ClientStats()
    watch = warmed(stats)
    stats.connection_resets += 1
    assert watch.check(3, answering=False, now_s=3) == []
    assert [a.kind for a in watch.check(4, answering=True, now_s=4)] == ["connection_theft"]


def test_a_long_outage_is_not_a_theft() -> None:
    stats = ClientStats()
    watch = warmed(stats)
    stats.connection_resets += 1
    for cycle in range(3, 9):
        assert watch.check(cycle, answering=False, now_s=cycle) == []
    assert watch.check(9, answering=True, now_s=9) == []


def test_unexpected_exceptions() -> None:
    stats = ClientStats()
    watch = warmed(stats)
    stats.exceptions_by_code[3] = 2
    alerts = watch.check(3, answering=True, now_s=3)
    assert [a.kind for a in alerts] == ["exception_pattern"]
    assert alerts[0].evidence["exceptions"] == {"illegal value": 2}
