"""What the proxy serves: the device's own words as of the last control cycle, each judged by how
often the gateway reads it.

The words come from the Modbus client's raw cache (`ModbusDevice.raw`), copied when a cycle ends
so that between two cycles a client reads exactly what the process image was built from. Every
register has a freshness policy:

- a register of a point the gateway polls: at most `fast_max_age_s` old (fast group),
  `slow_max_age_s` (slow group) or any age (static group). Older, or not read yet: the answer is
  busy (exception 6); the gateway's next cycle reads it, the proxy does not.
- an unmapped register inside a block the profiles declare (the device answers it as the block's
  fill): served as last read, at any age; fetched on demand once if never read.
- anything else (points the device has not got, registers outside the profiles): fetched on
  demand, then served for `on_demand_max_age_s`.

A span that overlaps addresses the device refused this session (learned exception 2) is refused
the same way, without asking the device again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from bessai.modbus.client import ModbusDevice
from bessai.modbus.profile import PollGroup

ILLEGAL_ADDRESS = 2
DEVICE_BUSY = 6


class Answer(Enum):
    WORDS = "words"  # every register fresh: `words` holds them
    BUSY = "busy"  # a polled register is older than its limit, or not read yet
    FETCH = "fetch"  # registers the gateway does not poll are missing or old: read `span`
    REFUSED = "refused"  # the device does not serve part of the span (exception 2)


@dataclass(frozen=True, slots=True)
class Lookup:
    answer: Answer
    words: tuple[int, ...] = ()
    #: (start, count) to read on demand when `answer` is FETCH
    span: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Freshness:
    """How old the served words may be, per poll group (seconds)."""

    fast_max_age_s: float
    slow_max_age_s: float
    on_demand_max_age_s: float

    def of(self, group: PollGroup | None) -> float:
        if group is PollGroup.FAST:
            return self.fast_max_age_s
        if group is PollGroup.SLOW:
            return self.slow_max_age_s
        return math.inf  # static: identification and ratings do not age


class ServedImage:
    """The words served to clients, with a freshness policy per register."""

    def __init__(self, device: ModbusDevice, freshness: Freshness) -> None:
        self.device = device
        self.freshness = freshness
        self._words: dict[int, tuple[int, float]] = {}
        #: address -> (max age, polled by the gateway); other addresses: on demand
        self._policy: dict[int, tuple[float, bool]] = {}
        self._on_demand = (freshness.on_demand_max_age_s, False)
        self.published = 0
        self._rebuild_policy()

    def _rebuild_policy(self) -> None:
        """Which registers the gateway polls and how often: presence and poll groups change as
        the static points are learned (PV strings, a second battery unit) and refused points
        are found, so this follows the device's current plan."""
        policy: dict[int, tuple[float, bool]] = {}
        for block in self.device.address_map.blocks:
            for address in range(block.start, block.end):
                policy[address] = (math.inf, False)  # unmapped: the block's fill
        for prof in self.device.profiles.values():
            for point in prof.points:
                for address in range(point.address, point.end):
                    policy[address] = self._on_demand  # a point the device may not have
        for bp in self.device.bound_points():
            max_age = self.freshness.of(bp.poll_group)
            for address in range(bp.point.address, bp.point.end):
                policy[address] = (max_age, True)
        self._policy = policy

    def publish(self) -> None:
        """Take the words the gateway has read (called when a cycle ends)."""
        self._words.update(self.device.raw.snapshot())
        self._rebuild_policy()
        self.published += 1

    def merge(self, start: int, registers: list[int], at: float) -> None:
        """Words read on demand; registers the gateway polls keep their cycle's value."""
        for offset, word in enumerate(registers):
            address = start + offset
            if not self._policy.get(address, self._on_demand)[1]:
                self._words[address] = (word, at)

    def lookup(self, start: int, count: int, now: float) -> Lookup:
        """The answer to a read of `count` registers from `start` at monotonic time `now`."""
        end = start + count
        if self.device.address_map.is_unsupported(start, end):
            return Lookup(Answer.REFUSED)
        words: list[int] = []
        first_missing = last_missing = -1
        busy = False
        for address in range(start, end):
            entry = self._words.get(address)
            max_age, polled = self._policy.get(address, self._on_demand)
            if entry is not None and now - entry[1] <= max_age:
                words.append(entry[0])
            elif polled:
                busy = True
            else:
                if first_missing < 0:
                    first_missing = address
                last_missing = address
        if busy:
            return Lookup(Answer.BUSY)
        if first_missing >= 0:
            return Lookup(Answer.FETCH, span=(first_missing, last_missing + 1 - first_missing))
        return Lookup(Answer.WORDS, tuple(words))
