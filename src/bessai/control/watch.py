"""What the control cycle asks of a security monitor, without knowing how it watches.

The cycle calls `Assessor.assess` once per cycle, right after the read, and acts on the answer:
a `failsafe` reason puts the site in SAFE (the monitor asks again every cycle it wants SAFE
held), `writes` (the monitor's own restores) are audited with the cycle's writes, and `suspect`
readings are kept from the planner. The implementation (`bessai.security`) is vendor and
protocol specific; the runtime wires it, so `control` stays vendor-neutral.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bessai.devices.base import Acquisition, WriteRecord

__all__ = ["ALERT_KINDS", "Assessor", "SecurityAlert", "SecurityAssessment"]

#: every `SecurityAlert.kind` a monitor raises (metrics start each at 0)
ALERT_KINDS = (
    "foreign_write",
    "connection_theft",
    "exception_pattern",
    "flooding",
    "sweep",
    "write_burst",
    "physics",
    "range",
    "anomaly",
)


@dataclass(frozen=True, slots=True)
class SecurityAlert:
    """One detection, in words and with its evidence (which check, which register, expected
    versus seen)."""

    kind: str  # foreign_write, connection_theft, exception_pattern, physics, anomaly, ...
    check: str
    message: str
    evidence: Mapping[str, object] = field(default_factory=dict)
    #: "high": acted on (restore, SAFE); "medium": alert and keep readings from the planner
    confidence: str = "medium"


@dataclass(frozen=True, slots=True)
class SecurityAssessment:
    """One cycle's verdict of the security monitor."""

    alerts: tuple[SecurityAlert, ...] = ()
    #: the anomaly score of this cycle (higher = stranger), None while learning
    score: float | None = None
    threshold: float | None = None
    learning: bool = True
    #: put (or keep) the site in SAFE for this reason
    failsafe: str | None = None
    #: writes the monitor made itself (restoring the gateway's values)
    writes: tuple[WriteRecord, ...] = ()
    #: readings taken to be false this cycle: they must not feed the planner
    suspect: tuple[str, ...] = ()


class Assessor(Protocol):
    """A security monitor the cycle consults after each read."""

    async def assess(self, cycle: int, acquired: Acquisition) -> SecurityAssessment:
        """Judge this cycle's read (and whatever else the monitor reads on its own schedule)."""
        ...

    def status(self) -> Mapping[str, object]:
        """The monitor's state in plain JSON types, for the status API."""
        ...
