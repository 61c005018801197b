"""Protocol checks on the gateway's own Modbus traffic: who else talks to the device shows in
how the device treats us.

- Connection theft: a Huawei device (and the simulator) serves one TCP client; when another
  client connects, ours is closed. A connection the device closed (not our own timeout) while it
  answers means someone else connected.
- Exception patterns: the gateway's requests are planned from the profile and the addresses the
  device refused once; an illegal function, address or value answer afterwards is unexpected.
- Flooding: timeouts and "busy" answers in a burst, while the device answered before.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from bessai.control.watch import SecurityAlert
from bessai.modbus.results import ClientStats

#: Exception codes the gateway's planned requests should never meet once the session is known.
UNEXPECTED_CODES = {1: "illegal function", 2: "illegal address", 3: "illegal value"}
BUSY_CODES = {5: "acknowledge", 6: "device busy"}
#: connection losses while the device does not answer are kept this many cycles for judgement
PENDING_CYCLES = 3


@dataclass(frozen=True, slots=True)
class _Snapshot:
    requests: int
    timeouts: int
    resets: int
    reconnects: int
    drops: int
    exceptions: dict[int, int]

    @classmethod
    def of(cls, stats: ClientStats) -> _Snapshot:
        return cls(
            stats.requests,
            stats.timeouts,
            stats.connection_resets,
            stats.reconnects,
            stats.connection_drops,
            dict(stats.exceptions_by_code),
        )


class ProtocolWatch:
    """Deltas of the device's request counters, cycle by cycle."""

    def __init__(self, stats: ClientStats, losses_tolerated_per_hour: float = 0.0) -> None:
        self.stats = stats
        self.losses_tolerated_per_hour = losses_tolerated_per_hour
        self._last: _Snapshot | None = None
        self._loss_times: deque[float] = deque()
        #: cycles with timeouts or busy answers, recent first
        self._trouble: deque[int] = deque(maxlen=6)
        self._warmed = False
        self._pending_lost = 0
        self._pending_since: int | None = None

    def _losses(self, now_s: float, lost: int) -> bool:
        """Record `lost` connection losses; True when they exceed the tolerated rate."""
        for _ in range(lost):
            self._loss_times.append(now_s)
        while self._loss_times and now_s - self._loss_times[0] > 3600.0:
            self._loss_times.popleft()
        return lost > 0 and len(self._loss_times) > self.losses_tolerated_per_hour

    def _theft(self, cycle: int, answering: bool, now_s: float, lost: int) -> SecurityAlert | None:
        """Losses are judged once the device answers again: a thief's connection churn can make
        a whole read fail, which is no reason to forget it; a long outage is not a theft."""
        if lost:
            if self._pending_since is None:
                self._pending_since = cycle
            self._pending_lost += lost
        if not self._pending_lost or self._pending_since is None:
            return None
        if not answering:
            if cycle - self._pending_since > PENDING_CYCLES:
                self._pending_lost, self._pending_since = 0, None
            return None
        lost, self._pending_lost, self._pending_since = self._pending_lost, 0, None
        if not self._losses(now_s, lost):
            return None
        return SecurityAlert(
            kind="connection_theft",
            check="connection lost while the device answers",
            message=(
                "the device closed the gateway's connection although it answers: "
                "another client connected to it"
            ),
            evidence={"connections_lost": lost, "cycle": cycle},
        )

    def check(self, cycle: int, answering: bool, now_s: float) -> list[SecurityAlert]:
        """This cycle's protocol alerts."""
        now = _Snapshot.of(self.stats)
        last, self._last = self._last, now
        if last is None or not self._warmed:
            # The first cycles connect and learn which addresses the device serves.
            self._warmed = last is not None and answering
            return []
        alerts: list[SecurityAlert] = []
        new_codes = {c: n - last.exceptions.get(c, 0) for c, n in now.exceptions.items()}
        timeouts = now.timeouts - last.timeouts
        # Closed by the device under a request, or between two (a reconnect we did not cause by
        # dropping the connection ourselves after a failure).
        silent = (now.reconnects - last.reconnects) - (now.drops - last.drops)
        lost = (now.resets - last.resets) + max(0, silent)
        theft = self._theft(cycle, answering, now_s, lost)
        if theft is not None:
            alerts.append(theft)
        unexpected = {
            UNEXPECTED_CODES[c]: n for c, n in new_codes.items() if c in UNEXPECTED_CODES and n > 0
        }
        if unexpected:
            alerts.append(
                SecurityAlert(
                    kind="exception_pattern",
                    check="unexpected Modbus exceptions",
                    message=f"the device answered the gateway's planned requests with {unexpected}",
                    evidence={"exceptions": unexpected, "cycle": cycle},
                )
            )
        busy = sum(n for c, n in new_codes.items() if c in BUSY_CODES)
        if timeouts or busy or lost:
            self._trouble.append(cycle)
        recent = [c for c in self._trouble if cycle - c < 6]
        if len(recent) >= 3 and answering:
            alerts.append(
                SecurityAlert(
                    kind="flooding",
                    check="timeouts and busy answers in a burst",
                    message=(
                        f"the device was slow or busy in {len(recent)} of the last 6 cycles: "
                        "flooding or a second client competing for it"
                    ),
                    evidence={"timeouts": timeouts, "busy": busy, "cycles": recent},
                )
            )
        return alerts
