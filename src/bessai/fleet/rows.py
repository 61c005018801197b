"""Received bytes -> rows for the stage table. A fast, strict parse: the fleet takes tens of
thousands of envelopes per second, so it checks what the database relies on (ids, seq, time,
kind) without building a pydantic model per message. What fails is a poison message: counted,
logged once per kind of problem, and terminated on the stream (never redelivered)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from bessai.telemetry.envelope import ID_PATTERN, KINDS, SEQ_MAX

_ID_RE = re.compile(ID_PATTERN)


def _non_finite(token: str) -> float:
    # Python's parser takes NaN and Infinity, PostgreSQL's jsonb (rightly) does not.
    raise BadEnvelopeError("values hold NaN or Infinity (use null)")


#: (site_id, boot_id, seq, ts, kind, device_id, historical, the envelope as JSON text)
StageRow = tuple[str, str, int, datetime, str, str | None, bool, str]


class BadEnvelopeError(Exception):
    """Why a message is not an envelope the fleet can store (the message says why)."""


def _text(doc: dict[str, Any], name: str, pattern: re.Pattern[str] | None) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value or len(value) > 64:
        raise BadEnvelopeError(f"{name} missing or not a short string")
    if pattern is not None and not pattern.fullmatch(value):
        raise BadEnvelopeError(f"{name} {value!r} has characters outside A-Z a-z 0-9 _ -")
    return value


def parse_envelope(data: bytes) -> StageRow:
    """One message body as a stage row; raises BadEnvelopeError naming what is wrong."""
    try:
        doc = json.loads(data, parse_constant=_non_finite)
    except BadEnvelopeError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadEnvelopeError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadEnvelopeError("not a JSON object")
    if doc.get("schema_version") != 1:
        raise BadEnvelopeError(f"schema_version {doc.get('schema_version')!r} is not 1")
    site_id = _text(doc, "site_id", _ID_RE)
    boot_id = _text(doc, "boot_id", None)
    seq = doc.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= SEQ_MAX:
        raise BadEnvelopeError(f"seq {seq!r} is not an integer in 0..2**63-1")
    kind = doc.get("kind")
    if kind not in KINDS:
        raise BadEnvelopeError(f"kind {kind!r} is not one of {KINDS}")
    try:
        ts = datetime.fromisoformat(doc["ts"])
    except (KeyError, TypeError, ValueError):
        raise BadEnvelopeError(f"ts {doc.get('ts')!r} is not an ISO 8601 time") from None
    if ts.utcoffset() is None:
        raise BadEnvelopeError(f"ts {doc['ts']!r} has no time zone")
    device_id = doc.get("device_id")
    if device_id is not None:
        device_id = _text(doc, "device_id", _ID_RE)
    values = doc.get("values")
    if not isinstance(values, dict):
        raise BadEnvelopeError("values is not an object")
    historical = bool(doc.get("historical", False))
    text = data.decode()
    # The body goes to the database as it came (jsonb parses it there); the database keeps
    # its `values`. Re-serialising here would double the parsing cost per message.
    return (site_id, boot_id, seq, ts, kind, device_id, historical, text)
