"""Other clients' requests, where the gateway sees them (the Modbus proxy, `bessai.proxy`):
address sweeps and write bursts.

A client that reads registers no profile defines, or reads very many different addresses, is
mapping the device; a client that writes many times in a few seconds is driving it. Legitimate
clients (Home Assistant, evcc) read the profile's registers in a fixed pattern and write rarely.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable

from bessai.control.watch import SecurityAlert

WINDOW_S = 60.0
#: requests outside every profile block that make a sweep
UNKNOWN_READS = 8
#: distinct start addresses in the window that make a sweep whatever they are
DISTINCT_STARTS = 96
BURST_WINDOW_S = 10.0
BURST_WRITES = 10


class RequestWatch:
    """Per client, the recent requests; alerts are collected and handed to the next cycle."""

    def __init__(
        self, blocks: Iterable[tuple[int, int]], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.blocks = sorted(blocks)
        self.clock = clock
        self._reads: dict[str, deque[tuple[float, int, bool]]] = {}
        self._writes: dict[str, deque[float]] = {}
        self._pending: list[SecurityAlert] = []
        self._flagged: dict[tuple[str, str], float] = {}

    def _known(self, address: int, count: int) -> bool:
        return any(start <= address and address + count <= end for start, end in self.blocks)

    def observe(self, client: str, fc: int, address: int, count: int) -> None:
        """One request of one client (a proxy listener)."""
        now = self.clock()
        if fc in (6, 16):
            writes = self._writes.setdefault(client, deque())
            writes.append(now)
            while writes and now - writes[0] > BURST_WINDOW_S:
                writes.popleft()
            if len(writes) >= BURST_WRITES:
                what = f"{len(writes)} writes in {BURST_WINDOW_S:g} s"
                self._flag(client, "write_burst", now, what, {"writes": len(writes)})
            return
        if fc != 3:
            return
        reads = self._reads.setdefault(client, deque())
        reads.append((now, address, self._known(address, count)))
        while reads and now - reads[0][0] > WINDOW_S:
            reads.popleft()
        unknown = sum(1 for _, _, known in reads if not known)
        starts = len({a for _, a, _ in reads})
        if unknown >= UNKNOWN_READS or starts >= DISTINCT_STARTS:
            what = f"{unknown} reads outside the profile, {starts} addresses in {WINDOW_S:g} s"
            self._flag(client, "sweep", now, what, {"unknown_reads": unknown, "addresses": starts})

    def _flag(
        self, client: str, kind: str, now: float, what: str, evidence: dict[str, object]
    ) -> None:
        key = (client, kind)
        last = self._flagged.get(key)
        if last is not None and now - last < WINDOW_S:
            return  # one alert per client and kind a minute
        self._flagged[key] = now
        self._pending.append(
            SecurityAlert(
                kind=kind,
                check="proxy client requests",
                message=f"proxy client {client}: {what}",
                evidence={"client": client, **evidence},
            )
        )

    def drain(self) -> list[SecurityAlert]:
        """The alerts raised since the last call."""
        pending, self._pending = self._pending, []
        return pending
