"""The VTN through its HTTP API (in-process ASGI): tokens by form and Basic, objects and their
metadata, who sees what, and every answer checked against the 3.1.0 OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bessai.vpp.spec import problems
from bessai.vpp.vtn.app import create_vtn_app
from bessai.vpp.vtn.service import Vtn
from tests.vpp.conftest import CLIENTS

FORM = {"grant_type": "client_credentials"}


def spec_problems(kind: str, obj: dict[str, Any]) -> list[str]:
    """Schema problems of an answer. The 3.1.0 `ven` and `resource` schemas join
    objectMetadata (objectType VEN/RESOURCE) with Bl*Request (objectType BL_*_REQUEST): no
    object can satisfy both, so those two are checked without objectType (docs/vpp.md)."""
    if kind in ("ven", "resource"):
        assert obj["objectType"] == kind.upper()
        request = "BlVenRequest" if kind == "ven" else "BlResourceRequest"
        rest = {k: v for k, v in obj.items() if k != "objectType"}
        found = problems("objectMetadata", obj)
        found += [p for p in problems(request, rest) if "objectType" not in p]
        return found
    return problems(kind, obj)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_vtn_app(Vtn(CLIENTS))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://vtn/openadr3/3.1.0") as c:
        yield c


async def token(
    client: httpx.AsyncClient, client_id: str, secret: str, basic: bool = False
) -> dict[str, str]:
    if basic:
        answer = await client.post("/auth/token", data=FORM, auth=(client_id, secret))
    else:
        form = {**FORM, "client_id": client_id, "client_secret": secret}
        answer = await client.post("/auth/token", data=form)
    assert answer.status_code == 200, answer.text
    assert problems("clientCredentialResponse", answer.json()) == []
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def test_token_by_form_and_by_basic_header(client: httpx.AsyncClient) -> None:
    await token(client, "bl-client", "bl-secret")
    await token(client, "ven-a", "secret-a", basic=True)
    wrong = await client.post(
        "/auth/token", data={**FORM, "client_id": "ven-a", "client_secret": "x"}
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    grant = await client.post("/auth/token", data={"grant_type": "password"})
    assert grant.status_code == 400
    assert grant.json()["error"] == "unsupported_grant_type"
    server = await client.get("/auth/server")
    assert server.json() == {"tokenURL": "http://vtn/openadr3/3.1.0/auth/token"}


async def test_no_token_is_401_and_a_ven_cannot_write_events(client: httpx.AsyncClient) -> None:
    assert (await client.get("/programs")).status_code == 401
    ven = await token(client, "ven-a", "secret-a")
    answer = await client.post("/programs", json={"programName": "x"}, headers=ven)
    assert answer.status_code == 403
    assert problems("problem", answer.json()) == []


async def _program_and_events(
    client: httpx.AsyncClient, bl: dict[str, str]
) -> tuple[str, str, str]:
    program = await client.post(
        "/programs",
        json={"programName": "peak", "id": "mine", "createdDateTime": "x", "objectType": "EVENT"},
        headers=bl,
    )
    assert program.status_code == 201, program.text
    body = program.json()
    assert body["id"] != "mine"
    assert body["objectType"] == "PROGRAM"
    assert spec_problems("program", body) == []
    events = []
    for target in ("site-a", "site-b"):
        event = {
            "programID": body["id"],
            "targets": [target],
            "intervalPeriod": {"start": "2030-01-01T00:00:00Z", "duration": "PT15M"},
            "intervals": [
                {"id": 7, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [1.0]}]}
            ],
            "reportDescriptors": [{"payloadType": "DEMAND"}],
        }
        answer = await client.post("/events", json=event, headers=bl)
        assert answer.status_code == 201, answer.text
        assert answer.json()["intervals"][0]["id"] == 7  # the client chose it
        assert spec_problems("event", answer.json()) == []
        events.append(answer.json()["id"])
    return body["id"], events[0], events[1]


async def test_a_ven_sees_only_events_targeted_at_it(client: httpx.AsyncClient) -> None:
    bl = await token(client, "bl-client", "bl-secret")
    _, event_a, _ = await _program_and_events(client, bl)
    ven = await token(client, "ven-a", "secret-a")
    assert (await client.get("/events", headers=ven)).json() == []  # not registered yet
    reg = await client.post(
        "/vens", json={"objectType": "VEN_VEN_REQUEST", "venName": "site-a"}, headers=ven
    )
    assert reg.status_code == 201, reg.text
    assert reg.json()["clientID"] == "ven-a"
    assert spec_problems("ven", reg.json()) == []
    res = await client.post(
        "/resources",
        json={
            "objectType": "VEN_RESOURCE_REQUEST",
            "resourceName": "battery",
            "venID": reg.json()["id"],
        },
        headers=ven,
    )
    assert res.status_code == 201, res.text
    assert spec_problems("resource", res.json()) == []
    seen = (await client.get("/events", headers=ven)).json()
    assert [e["id"] for e in seen] == [event_a]
    assert len((await client.get("/events", headers=bl)).json()) == 2
    other = await token(client, "ven-b", "secret-b")
    assert (await client.get(f"/events/{event_a}", headers=other)).status_code == 404
    assert (await client.get(f"/vens/{reg.json()['id']}", headers=other)).status_code == 404
    dup = await client.post(
        "/vens", json={"objectType": "VEN_VEN_REQUEST", "venName": "site-a"}, headers=other
    )
    assert dup.status_code == 409


async def test_reports_belong_to_their_client(client: httpx.AsyncClient) -> None:
    bl = await token(client, "bl-client", "bl-secret")
    _, event_a, _ = await _program_and_events(client, bl)
    ven = await token(client, "ven-a", "secret-a")
    report = {
        "eventID": event_a,
        "clientName": "site-a",
        "clientID": "forged",
        "resources": [
            {
                "resourceName": "battery",
                "intervals": [{"id": 7, "payloads": [{"type": "DEMAND", "values": [0.9]}]}],
            }
        ],
    }
    answer = await client.post("/reports", json=report, headers=ven)
    assert answer.status_code == 201, answer.text
    assert answer.json()["clientID"] == "ven-a"
    assert spec_problems("report", answer.json()) == []
    assert len((await client.get("/reports", headers=bl)).json()) == 1
    other = await token(client, "ven-b", "secret-b")
    assert (await client.get("/reports", headers=other)).json() == []
    bad = await client.post("/reports", json={**report, "eventID": "nope"}, headers=ven)
    assert bad.status_code == 400


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/programs", {"programName": ""}),
        ("/programs", [1, 2]),
        ("/events", {"programID": "has space"}),
        (
            "/events",
            {
                "programID": "p",
                "intervals": [{"id": 0, "payloads": [], "intervalPeriod": {"duration": "1h"}}],
            },
        ),
    ],
)
async def test_bad_bodies_are_400_problems(
    client: httpx.AsyncClient, path: str, body: object
) -> None:
    bl = await token(client, "bl-client", "bl-secret")
    answer = await client.post(path, json=body, headers=bl)
    assert answer.status_code == 400, answer.text
    assert problems("problem", answer.json()) == []


async def test_bad_query_parameters_are_400(client: httpx.AsyncClient) -> None:
    bl = await token(client, "bl-client", "bl-secret")
    for query in ("limit=51", "skip=-1", "limit=x", "active=maybe"):
        assert (await client.get(f"/events?{query}", headers=bl)).status_code == 400, query


async def test_update_keeps_identity_and_delete_answers_the_object(
    client: httpx.AsyncClient,
) -> None:
    bl = await token(client, "bl-client", "bl-secret")
    program_id, event_a, _ = await _program_and_events(client, bl)
    old = (await client.get(f"/events/{event_a}", headers=bl)).json()
    new = await client.put(
        f"/events/{event_a}", json={**old, "eventName": "renamed", "id": "zzz"}, headers=bl
    )
    assert new.status_code == 200
    assert new.json()["id"] == event_a
    assert new.json()["eventName"] == "renamed"
    assert new.json()["createdDateTime"] == old["createdDateTime"]
    gone = await client.delete(f"/events/{event_a}", headers=bl)
    assert gone.json()["id"] == event_a
    assert (await client.get(f"/events/{event_a}", headers=bl)).status_code == 404
    assert (await client.get(f"/events?programID={program_id}", headers=bl)).json()[0][
        "id"
    ] != event_a


async def test_the_router_mounts_in_another_app_with_one_call() -> None:
    """What the fleet backend does: its own app, one include_router, errors still problems."""
    from fastapi import FastAPI

    from bessai.vpp.vtn.routes import vtn_router

    host = FastAPI()
    host.include_router(vtn_router(Vtn(CLIENTS)), prefix="/vtn")
    transport = httpx.ASGITransport(app=host)
    async with httpx.AsyncClient(transport=transport, base_url="http://fleet/vtn") as c:
        bl = await token(c, "bl-client", "bl-secret")
        assert (await c.post("/programs", json={"programName": "p"}, headers=bl)).status_code == 201
        bad = await c.get("/events?limit=x", headers=bl)
        assert bad.status_code == 400
        assert problems("problem", bad.json()) == []
        assert (await c.get("/programs")).status_code == 401


async def test_groups_the_business_logic_assigns_reach_the_ven(client: httpx.AsyncClient) -> None:
    bl = await token(client, "bl-client", "bl-secret")
    ven = await token(client, "ven-a", "secret-a")
    reg = await client.post(
        "/vens",
        json={"objectType": "VEN_VEN_REQUEST", "venName": "site-a", "targets": ["x"]},
        headers=ven,
    )
    ven_id = reg.json()["id"]
    assert reg.json().get("targets") is None  # a VEN cannot put itself in a group
    program = (await client.post("/programs", json={"programName": "g"}, headers=bl)).json()["id"]
    event = {"programID": program, "targets": ["group-north"], "intervals": []}
    made = (await client.post("/events", json=event, headers=bl)).json()["id"]
    assert (await client.get("/events", headers=ven)).json() == []
    grouped = {"objectType": "BL_VEN_REQUEST", "clientID": "ven-a", "venName": "site-a",
               "targets": ["group-north"]}  # fmt: skip
    assert (await client.put(f"/vens/{ven_id}", json=grouped, headers=bl)).status_code == 200
    assert [e["id"] for e in (await client.get("/events", headers=ven)).json()] == [made]
