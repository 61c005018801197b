"""What the device client takes and gives: connection settings, decoded readings, poll and write
results, and request statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bessai.modbus.codec import Value
from bessai.modbus.profile import Point, PollGroup


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Connection habits; the defaults are the values used in the field (docs/profiles.md, "The
    client's field habits")."""

    wait_after_connect_s: float = 1.0
    cooldown_s: float = 0.05
    timeout_s: float = 5.0
    retries: int = 3
    retry_backoff_s: float = 0.5
    retry_backoff_max_s: float = 10.0
    reconnect_backoff_s: float = 1.0
    reconnect_backoff_max_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Reading:
    """A decoded point. `available` is False when the device does not serve the point. `group`
    is the poll group it was read with, when the device reads it in another than the profile's."""

    profile: str
    point: Point
    value: Value
    raw: int | str | None
    ts: datetime
    available: bool = True
    error: str | None = None
    group: PollGroup | None = None

    @property
    def key(self) -> str:
        return f"{self.profile}.{self.point.name}"

    @property
    def poll_group(self) -> PollGroup | None:
        """How often the point is read: what its age must be judged against."""
        return self.group if self.group is not None else self.point.group


@dataclass(slots=True)
class PollResult:
    readings: dict[str, Reading] = field(default_factory=dict)
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def value(self, profile: str, name: str) -> Value:
        reading = self.readings.get(f"{profile}.{name}")
        return None if reading is None else reading.value


@dataclass(frozen=True, slots=True)
class WriteResult:
    profile: str
    point: Point
    value: object
    registers: tuple[int, ...]
    function_code: int
    verified: bool
    read_back: Value


@dataclass(slots=True)
class ClientStats:
    requests: int = 0
    errors: int = 0
    timeouts: int = 0
    reconnects: int = 0
    #: connections closed under a request by the other side (not our timeout): on a device that
    #: serves one client, the sign that another client connected
    connection_resets: int = 0
    #: connections this client dropped itself after a failed request (each is reconnected)
    connection_drops: int = 0
    exceptions_by_code: dict[int, int] = field(default_factory=dict)
    last_latency_s: float = 0.0
