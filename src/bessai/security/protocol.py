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

    def _losses(self, now_s: float, lost: int) -> bool:
        """Record `lost` connection losses; True when they exceed the tolerated rate."""
        for _ in range(lost):
            self._loss_times.append(now_s)
        while self._loss_times and now_s - self._loss_times[0] > 3600.0:
            self._loss_times.popleft()
        return lost > 0 and len(self._loss_times) > self.losses_tolerated_per_hour

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
        if lost and answering and self._losses(now_s, lost):
            alerts.append(
                SecurityAlert(
                    kind="connection_theft",
                    check="connection lost while the device answers",
                    message=(
                        "the device closed the gateway's connection although it answers: "
                        "another client connected to it"
                    ),
                    evidence={"connections_lost": lost, "cycle": cycle},
                )
            )
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
        if timeouts or busy:
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
