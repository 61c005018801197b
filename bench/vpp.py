"""The virtual power plant's costs: what a capacity limit adds to every control cycle (the
constraint computed from the meter), the VTN answering a VEN's event poll and taking a report
(each body checked against the 3.1.0 document), in-process over ASGI."""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bessai.control.controllers import GridEventSlot, GridLimit, Proposal
from bessai.devices.base import Measurements
from bessai.vpp.spec import problems
from bessai.vpp.vtn.app import create_vtn_app
from bessai.vpp.vtn.auth import VtnClient
from bessai.vpp.vtn.service import Vtn

CYCLES = 50_000
EVENTS = 50
POLLS = 200
REPORTS = 200


def _constraint_us() -> float:
    now = datetime.now(UTC)
    slot = GridEventSlot()
    slot.margin_w = 50.0
    limits = [
        GridLimit(now - timedelta(minutes=1), now + timedelta(hours=1), 1_000.0 + n, None, "limit")
        for n in range(3)
    ]
    slot.replace([], limits)
    m = Measurements(grid_power_w=4_500.0, battery_power_w=3_000.0)
    proposal = Proposal("schedule", 3_000.0, "plan")
    started = time.perf_counter()
    for _ in range(CYCLES):
        slot.constrain(proposal, m, now)
    return (time.perf_counter() - started) / CYCLES * 1e6


def _event(program_id: str, n: int) -> dict[str, Any]:
    return {
        "programID": program_id,
        "targets": [f"site-{n % 10}"],
        "intervalPeriod": {"start": "2030-01-01T00:00:00Z", "duration": "PT15M"},
        "intervals": [
            {"id": k, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [1.0]}]}
            for k in range(4)
        ],
    }


def _report(event_id: str) -> dict[str, Any]:
    payloads = [{"type": t, "values": [1.0]} for t in ("DEMAND", "BASELINE", "USAGE")]
    return {
        "eventID": event_id,
        "clientName": "site-1",
        "resources": [{"resourceName": "battery", "intervals": [{"id": 0, "payloads": payloads}]}],
    }


async def _vtn() -> dict[str, float]:
    clients = [VtnClient("bl", "s", "bl"), VtnClient("v", "s", "ven")]
    app = create_vtn_app(Vtn(clients))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://vtn/openadr3/3.1.0") as c:
        form = {"grant_type": "client_credentials", "client_secret": "s"}
        bl_token = (await c.post("/auth/token", data={**form, "client_id": "bl"})).json()
        ven_token = (await c.post("/auth/token", data={**form, "client_id": "v"})).json()
        bl = {"Authorization": f"Bearer {bl_token['access_token']}"}
        ven = {"Authorization": f"Bearer {ven_token['access_token']}"}
        program = (await c.post("/programs", json={"programName": "p"}, headers=bl)).json()
        for n in range(EVENTS):
            await c.post("/events", json=_event(program["id"], n), headers=bl)
        await c.post(
            "/vens", json={"objectType": "VEN_VEN_REQUEST", "venName": "site-1"}, headers=ven
        )
        event_id = (await c.get("/events", headers=ven)).json()[0]["id"]
        polls = []
        for _ in range(POLLS):
            started = time.perf_counter()
            answer = await c.get("/events", headers=ven)
            polls.append(time.perf_counter() - started)
        assert answer.status_code == 200
        posts = []
        for _ in range(REPORTS):
            started = time.perf_counter()
            answer = await c.post("/reports", json=_report(event_id), headers=ven)
            posts.append(time.perf_counter() - started)
        assert answer.status_code == 201
    return {
        "events_in_vtn": EVENTS,
        "event_poll_ms_median": round(statistics.median(polls) * 1e3, 3),
        "report_post_ms_median": round(statistics.median(posts) * 1e3, 3),
    }


def _validation_us() -> float:
    body = _report("event-1")
    problems("reportRequest", body)  # build the validator once
    started = time.perf_counter()
    for _ in range(2_000):
        problems("reportRequest", body)
    return (time.perf_counter() - started) / 2_000 * 1e6


def run() -> dict[str, object]:
    """The figures, as JSON-ready values."""
    return {
        "capacity_limit_per_cycle_us": round(_constraint_us(), 3),
        "report_schema_check_us": round(_validation_us(), 1),
        **asyncio.run(_vtn()),
    }
