"""The VEN's pieces without a gateway: event times, payload translation, the outcome of an
interval, the objects it sends (checked against the 3.1.0 document), its OAuth2 session in
both client-authentication modes, and its configuration errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bessai.config import SiteConfig, VppConfig
from bessai.errors import ConfigError
from bessai.vpp.events import END_OF_TIME, intervals
from bessai.vpp.reports import (
    CANNOT_COMPLY,
    COMPLIED,
    NO_DATA,
    NOT_SUPPORTED,
    IntervalStats,
    interval_report,
    judge,
    report_body,
)
from bessai.vpp.session import VtnRefusedError, VtnSession
from bessai.vpp.spec import problems
from bessai.vpp.times import OadrFormatError, parse_datetime, parse_duration
from bessai.vpp.translate import translate
from bessai.vpp.vtn.app import create_vtn_app
from bessai.vpp.vtn.service import Vtn
from tests.vpp.conftest import CLIENTS

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
UNITS = {
    "IMPORT_CAPACITY_LIMIT": 1000.0,
    "EXPORT_CAPACITY_LIMIT": 1000.0,
    "DISPATCH_SETPOINT": 1000.0,
    "SIMPLE": 1.0,
    "PRICE": 1.0,
}


def site(**vpp: object) -> SiteConfig:
    return SiteConfig.model_validate({"id": "s1", "vpp": vpp})


def test_durations_and_times() -> None:
    assert parse_duration("PT15M") == timedelta(minutes=15)
    assert parse_duration("P1DT2H") == timedelta(days=1, hours=2)
    assert parse_duration("P1W") == timedelta(days=7)
    assert parse_duration("-PT1S") == timedelta(seconds=-1)
    with pytest.raises(OadrFormatError):
        parse_duration("1h")
    assert parse_datetime("0001-01-01T00:00:00Z", NOW) == NOW  # "now"
    assert parse_datetime("2026-06-01T12:00:00", NOW) == NOW  # naive: UTC


def test_intervals_follow_each_other_and_may_override_the_period() -> None:
    event = {
        "id": "e1",
        "intervalPeriod": {"start": "2026-06-01T12:00:00Z", "duration": "PT15M"},
        "intervals": [
            {"id": 0, "payloads": [{"type": "PRICE", "values": [10]}]},
            {"id": 1, "payloads": [{"type": "PRICE", "values": [20]}]},
            {
                "id": 9,
                "intervalPeriod": {"start": "2026-06-01T18:00:00Z", "duration": "PT1H"},
                "payloads": [],
            },
        ],
    }
    found = intervals(event, NOW)
    assert [(i.interval_id, i.start.hour, i.start.minute) for i in found] == [
        (0, 12, 0),
        (1, 12, 15),
        (9, 18, 0),
    ]
    assert found[2].end - found[2].start == timedelta(hours=1)
    forever = intervals({"id": "e2", "intervals": [{"id": 0, "payloads": []}]}, NOW)
    assert forever[0].start == NOW
    assert forever[0].end == END_OF_TIME


def one(payload_type: str, value: object, **vpp: object) -> object:
    event = {
        "id": "e",
        "intervalPeriod": {"start": "2026-06-01T12:00:00Z", "duration": "PT1H"},
        "intervals": [{"id": 0, "payloads": [{"type": payload_type, "values": [value]}]}],
    }
    return translate(intervals(event, NOW)[0], site(**vpp), UNITS, "test")


def test_payload_types_into_control() -> None:
    limit = one("IMPORT_CAPACITY_LIMIT", 1.5)
    assert limit.limits[0].import_max_w == 1500.0
    assert limit.limits[0].export_max_w is None
    assert one("EXPORT_CAPACITY_LIMIT", 2).limits[0].export_max_w == 2000.0
    # DISPATCH_SETPOINT in the generator convention: +2 kW delivered = discharge 2 kW.
    assert one("DISPATCH_SETPOINT", 2).setpoints[0].setpoint_w == -2000.0
    assert one("SIMPLE", 3).setpoints[0].setpoint_w == -5000.0  # the site's max discharge
    assert one("SIMPLE", 0).setpoints == []
    assert "no price thresholds" in one("PRICE", 90).ignored["PRICE"]
    thresholds = {"price_charge_below": 20, "price_discharge_above": 80}
    assert one("PRICE", 90, **thresholds).setpoints[0].setpoint_w == -5000.0
    assert one("PRICE", 10, **thresholds).setpoints[0].setpoint_w == 5000.0
    assert one("PRICE", 50, **thresholds).setpoints == []
    assert one("GHG", 300).ignored["GHG"] == "payload type not supported"
    assert one("PRICE", "high").ignored["PRICE"] == "no numeric value"


def test_interval_outcomes() -> None:
    event = {
        "id": "e",
        "intervalPeriod": {"start": "2026-06-01T12:00:00Z", "duration": "PT1M"},
        "intervals": [{"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [1]}]}],
    }
    interval = intervals(event, NOW)[0]
    assert judge(interval, None, UNITS)[0] == NO_DATA
    kept = IntervalStats()
    kept.add(4_000.0, 3_000.0, counted=False)  # the first cycle, before the cap acts
    kept.add(950.0, -550.0, counted=True)
    assert judge(interval, kept, UNITS) == (COMPLIED, "measured at the meter")
    broke = IntervalStats()
    broke.add(950.0, -550.0, counted=False)
    broke.add(2_500.0, 0.0, counted=True)
    broke.note("safety blocked: SOC at the minimum")
    outcome, why = judge(interval, broke, UNITS)
    assert outcome == CANNOT_COMPLY
    assert "2.50 kW" in why
    assert "SOC at the minimum" in why
    ghg = intervals(
        {"id": "g", "intervals": [{"id": 0, "payloads": [{"type": "GHG", "values": [1]}]}]}, NOW
    )[0]
    assert judge(ghg, kept, UNITS)[0] == NOT_SUPPORTED


def test_what_the_ven_sends_follows_the_document() -> None:
    event = {
        "id": "e",
        "intervalPeriod": {"start": "2026-06-01T12:00:00Z", "duration": "PT1M"},
        "intervals": [{"id": 4, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [1]}]}],
    }
    interval = intervals(event, NOW)[0]
    stats = IntervalStats()
    stats.add(900.0, -600.0, counted=True)
    stats.soc_pct, stats.flex_up_w, stats.flex_down_w, stats.usable_kwh = (
        48.0,
        4_400.0,
        5_600.0,
        5.7,
    )
    body = report_body(
        "event-1", "site-a", "battery", [interval_report(interval, stats, (COMPLIED, "ok"))]
    )
    assert problems("reportRequest", body) == []
    payloads = {p["type"]: p["values"] for p in body["resources"][0]["intervals"][0]["payloads"]}
    assert payloads["DEMAND"] == [0.9]
    assert payloads["BASELINE"] == [1.5]
    assert payloads["STORAGE_MAX_DISCHARGE_POWER"] == [4.4]
    assert problems("VenVenRequest", {"objectType": "VEN_VEN_REQUEST", "venName": "site-a"}) == []
    resource = {
        "objectType": "VEN_RESOURCE_REQUEST",
        "resourceName": "battery",
        "venID": "ven-1",
        "attributes": [{"type": "MAX_POWER_CONSUMPTION", "values": [5.0]}],
    }
    assert problems("VenResourceRequest", resource) == []


@pytest.mark.parametrize("client_auth", ["form", "basic"])
async def test_session_gets_a_token_either_way(client_auth: str) -> None:
    app = create_vtn_app(Vtn(CLIENTS))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    config = VppConfig(
        vtn_url="http://vtn/openadr3/3.1.0",
        client_id="ven-a",
        client_secret="secret-a",
        client_auth=client_auth,
    )  # type: ignore[arg-type]
    session = VtnSession(config, http)
    try:
        assert await session.request("GET", "/events") == []
        wrong = VtnSession(config.model_copy(update={"client_id": "nobody"}), http)
        with pytest.raises(VtnRefusedError, match="token refused"):
            await wrong.request("GET", "/events")
    finally:
        await session.close()


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match="needs vtn_url and client_id"):
        VppConfig(enabled=True)
    with pytest.raises(ValueError, match="not an http"):
        VppConfig(vtn_url="ftp://x")
    with pytest.raises(ValueError, match="must be below"):
        VppConfig(price_charge_below=50, price_discharge_above=40)
    assert VppConfig().verify_tls is True
    assert ConfigError  # the loader wraps these with file and key (bessai.config)
