"""The telemetry envelope: one versioned JSON document per site per cycle (or per alarm/command).

Two shapes of the same thing. `Record` and `Envelope` are frozen dataclasses for the hot path
(the cycle builds a Record, the outbox turns it into an Envelope by giving it a `seq`);
`EnvelopeModel` is the pydantic model used at the edges (parsing what a subscriber receives,
and generating the JSON Schema published in docs/telemetry.md).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from bessai.errors import TelemetryError

SCHEMA_VERSION = 1

Kind = Literal["telemetry", "alarm", "command"]
KINDS: tuple[str, ...] = get_args(Kind)

Value = float | int | bool | str | None

# Ids travel in MQTT topics, NATS subjects and lake paths: no '/', '+', '#', '.', '*', '>'.
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# Value names carry their unit (`soc_pct`, `power_w`); lower snake case keeps lake columns clean.
VALUE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
# The highest seq SQLite can store (signed 64-bit); the schema says so rather than promise 2**64.
SEQ_MAX = 2**63 - 1

# The device segment of a topic/subject when an envelope has no device (site-level values).
SITE_DEVICE = "_"

_ID_RE = re.compile(ID_PATTERN)
_VALUE_NAME_RE = re.compile(VALUE_NAME_PATTERN)

ENVELOPE_FIELDS: frozenset[str] = frozenset(
    {"schema_version", "site_id", "device_id", "boot_id", "seq", "ts", "historical", "kind"}
)


def _check_id(what: str, value: str) -> None:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise TelemetryError(
            f"{what} {value!r} is invalid: use 1-64 characters from A-Z a-z 0-9 _ -"
        )


@dataclass(frozen=True, slots=True)
class Record:
    """What the cycle hands to the outbox: everything but the sequence number.

    `ts` is the source time of the values (timezone-aware); it defaults to now in UTC.
    A missing measurement is `None`, never NaN (JSON has no NaN and consumers would choke).
    """

    site_id: str
    values: Mapping[str, Value]
    kind: Kind = "telemetry"
    device_id: str | None = None
    ts: datetime | None = None

    def __post_init__(self) -> None:
        _check_id("site_id", self.site_id)
        if self.device_id is not None:
            _check_id(f"device_id of site {self.site_id}", self.device_id)
            if self.device_id == SITE_DEVICE:
                raise TelemetryError(
                    f"device_id {SITE_DEVICE!r} of site {self.site_id} is reserved for "
                    "site-level values: leave device_id unset instead"
                )
        if self.kind not in KINDS:
            raise TelemetryError(
                f"kind {self.kind!r} of site {self.site_id} is invalid: use one of {KINDS}"
            )
        if self.ts is not None and self.ts.utcoffset() is None:
            raise TelemetryError(f"ts of site {self.site_id} must be timezone-aware, got {self.ts}")
        for name, value in self.values.items():
            if not isinstance(name, str) or not _VALUE_NAME_RE.fullmatch(name):
                raise TelemetryError(
                    f"value name {name!r} of site {self.site_id} is invalid: lower snake case "
                    "with the unit in the name, e.g. soc_pct or battery_power_w"
                )
            if name in ENVELOPE_FIELDS:
                raise TelemetryError(
                    f"value name {name!r} of site {self.site_id} is reserved for the envelope"
                )
            if isinstance(value, float) and not math.isfinite(value):
                raise TelemetryError(
                    f"value {name}={value} of site {self.site_id} is not finite: use None "
                    "for a missing measurement"
                )
            if value is not None and not isinstance(value, int | float | str):
                raise TelemetryError(
                    f"value {name} of site {self.site_id} has type {type(value).__name__}: "
                    "use float, int, bool, str or None"
                )


@dataclass(frozen=True, slots=True)
class Envelope:
    """A Record with its identity: (`site_id`, `seq`) is the idempotency key."""

    site_id: str
    seq: int
    boot_id: str
    ts: datetime
    kind: Kind
    values: Mapping[str, Value]
    device_id: str | None = None
    historical: bool = False
    schema_version: int = SCHEMA_VERSION

    @property
    def key(self) -> str:
        """The idempotency key as one string (also the NATS `Nats-Msg-Id`)."""
        return f"{self.site_id}:{self.seq}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "site_id": self.site_id,
            "device_id": self.device_id,
            "boot_id": self.boot_id,
            "seq": self.seq,
            "ts": format_ts(self.ts),
            "historical": self.historical,
            "kind": self.kind,
            "values": dict(self.values),
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False).encode()

    @classmethod
    def from_json(cls, data: bytes | str, *, where: str = "payload") -> Envelope:
        """Parse and validate a received envelope; a bad one raises TelemetryError naming it."""
        try:
            model = EnvelopeModel.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "(root)"
            raise TelemetryError(f"{where}: invalid envelope at {loc}: {first['msg']}") from exc
        return cls(
            site_id=model.site_id,
            seq=model.seq,
            boot_id=model.boot_id,
            ts=model.ts.astimezone(UTC),
            kind=model.kind,
            values=dict(model.values),
            device_id=model.device_id,
            historical=model.historical,
            schema_version=model.schema_version,
        )


def format_ts(ts: datetime) -> str:
    """UTC, microseconds, trailing Z: sortable as text and unambiguous."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


IdStr = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
ValueName = Annotated[str, StringConstraints(pattern=VALUE_NAME_PATTERN)]


class EnvelopeModel(BaseModel):
    """bessai telemetry envelope, schema version 1.

    One JSON object per message. (`site_id`, `seq`) identifies a message uniquely: a consumer
    that has seen the pair before has a duplicate (delivery is at-least-once).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, title="bessai telemetry envelope")

    schema_version: Literal[1] = Field(description="Version of this schema; bumped on a change.")
    site_id: IdStr = Field(description="Site that produced the message.")
    device_id: IdStr | None = Field(
        default=None, description="Device the values belong to; null for site-level values."
    )
    boot_id: str = Field(
        min_length=1, max_length=64, description="Random id of the gateway process run."
    )
    seq: int = Field(
        ge=0,
        le=SEQ_MAX,
        description="Per-site sequence number: starts at 0, +1 per message, continues across "
        "restarts, never reused. Unsigned; stored as SQLite INTEGER, hence at most 2**63-1.",
    )
    ts: AwareDatetime = Field(description="Source time of the values, UTC, ISO 8601.")
    historical: bool = Field(
        description="True when the message is delivered late, after an outage held it back."
    )
    kind: Kind = Field(
        description="telemetry (may be dropped by the outbox cap), alarm or command (never)."
    )
    values: dict[ValueName, float | int | bool | str | None] = Field(
        description="Measurements, unit in each name (power_w, soc_pct); null when missing."
    )


def envelope_json_schema() -> dict[str, Any]:
    """The JSON Schema of the envelope, as published in docs/telemetry.md."""
    schema = EnvelopeModel.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def now_utc() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)
