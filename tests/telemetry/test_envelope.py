"""The envelope is the contract with every consumer: its validation and JSON form."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bessai.errors import TelemetryError
from bessai.telemetry.envelope import Envelope, EnvelopeModel, Record, envelope_json_schema


def _env(**over: object) -> Envelope:
    fields: dict[str, object] = {
        "site_id": "site-1",
        "seq": 7,
        "boot_id": "b00t",
        "ts": datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        "kind": "telemetry",
        "values": {"soc_pct": 55.5, "battery_power_w": -1200, "mode": "idle", "ok": True},
        "device_id": "bat1",
    }
    fields.update(over)
    return Envelope(**fields)  # type: ignore[arg-type]


def test_json_round_trip_keeps_every_field() -> None:
    env = _env()
    back = Envelope.from_json(env.to_json())
    assert back == env
    doc = json.loads(env.to_json())
    assert doc["ts"] == "2026-01-02T03:04:05.123456Z"
    assert doc["schema_version"] == 1
    assert env.key == "site-1:7"


def test_ts_is_converted_to_utc() -> None:
    local = datetime(2026, 1, 2, 0, 0, tzinfo=timezone(timedelta(hours=-3)))
    assert json.loads(_env(ts=local).to_json())["ts"] == "2026-01-02T03:00:00.000000Z"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"site_id": "a/b"}, "site_id 'a/b' is invalid"),
        ({"site_id": "a.b"}, "site_id 'a.b' is invalid"),
        ({"device_id": "x+y"}, "device_id of site s1"),
        ({"device_id": "_"}, "reserved for site-level values"),
        ({"kind": "event"}, "kind 'event'"),
        ({"values": {"SOC": 1.0}}, "value name 'SOC'"),
        ({"values": {"seq": 1}}, "reserved for the envelope"),
        ({"values": {"soc_pct": float("nan")}}, "not finite"),
        ({"values": {"soc_pct": [1, 2]}}, "has type list"),
        ({"ts": datetime(2026, 1, 1)}, "timezone-aware"),
    ],
)
def test_bad_record_names_what_is_wrong(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"site_id": "s1", "values": {"soc_pct": 1.0}}
    fields.update(kwargs)
    with pytest.raises(TelemetryError, match=message.replace("+", r"\+")):
        Record(**fields)  # type: ignore[arg-type]


def test_from_json_rejects_bad_payload_with_location() -> None:
    doc = json.loads(_env().to_json())
    doc["seq"] = -1
    with pytest.raises(TelemetryError, match=r"topic t: invalid envelope at seq"):
        Envelope.from_json(json.dumps(doc), where="topic t")
    doc["seq"] = 1
    doc["extra"] = 1
    with pytest.raises(TelemetryError, match="extra"):
        Envelope.from_json(json.dumps(doc))


def test_historical_flag_survives_parsing() -> None:
    env = _env(historical=True)
    assert Envelope.from_json(env.to_json()).historical is True


def test_schema_describes_the_model() -> None:
    schema = envelope_json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) >= {"schema_version", "site_id", "seq", "ts", "kind", "values"}
    assert schema["properties"]["seq"]["minimum"] == 0
    assert EnvelopeModel.model_validate_json(_env().to_json()).seq == 7
