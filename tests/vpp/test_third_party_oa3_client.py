"""python-oa3-client (grid-coordination, MIT, on `openadr3`) against our VTN: its business
logic client makes a program and an event, its VEN client fetches a token by client
credentials, registers, adds a resource, finds the program by name, polls the event into its
own typed models, subscribes by webhook (our VTN notifies a receiver) and reports."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from bessai.vpp.spec import problems
from tests.vpp.conftest import RunningVtn

openadr3_client = pytest.importorskip("openadr3_client")


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on loopback: what it received, with the bearer token checked."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Authorization") == "Bearer hook-token":
                received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()


def test_python_oa3_client_flows(
    vtn_server: RunningVtn, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    from openadr3_client import BlClient, VenClient

    hook_url, received = receiver
    bl = BlClient(url=vtn_server.url, client_id="bl-client", client_secret="bl-secret").start()
    ven = VenClient(url=vtn_server.url, client_id="ven-3p", client_secret="secret-3p").start()
    try:
        program = bl.create_program({"programName": "third-party"})
        assert program.status_code == 201, program.text
        program_id = program.json()["id"]
        ven.register("3p-ven")
        assert ven.ven_id
        resource = ven.create_resource(
            {
                "objectType": "VEN_RESOURCE_REQUEST",
                "resourceName": "3p-battery",
                "venID": ven.ven_id,
            }
        )
        assert resource.status_code == 201, resource.text
        assert ven.resolve_program_id("third-party") == program_id
        # (VenClient.subscribe needs its Flask webhook channel; the call it makes is this one.)
        operations = [{"objects": ["EVENT"], "operations": ["CREATE"], "callbackUrl": hook_url,
                       "bearerToken": "hook-token"}]  # fmt: skip
        subscription = ven.create_subscription(
            {"clientName": "3p-ven", "programID": program_id, "objectOperations": operations}
        )
        assert subscription.status_code == 201, subscription.text

        event = {
            "programID": program_id,
            "targets": ["3p-ven"],
            "intervalPeriod": {"start": "2030-01-01T00:00:00Z", "duration": "PT1H"},
            "intervals": [{"id": 3, "payloads": [{"type": "PRICE", "values": [0.25]}]}],
        }
        created = bl.create_event(event)
        assert created.status_code == 201, created.text
        events = ven.poll_events("third-party")
        assert [e.id for e in events] == [created.json()["id"]]
        assert events[0].intervals[0].id == 3

        report = {
            "eventID": created.json()["id"],
            "clientName": "3p-ven",
            "resources": [
                {
                    "resourceName": "3p-battery",
                    "intervals": [{"id": 3, "payloads": [{"type": "USAGE", "values": [1.5]}]}],
                }
            ],
        }
        sent = ven.create_report(report)
        assert sent.status_code == 201, sent.text
        assert problems("report", sent.json()) == []
        assert [r["clientID"] for r in bl.get_reports().json()] == ["ven-3p"]
        _wait(lambda: received, "the webhook notification")
        assert received[0]["objectType"] == "EVENT"
        assert received[0]["operation"] == "CREATE"
        assert received[0]["object"]["id"] == created.json()["id"]
        assert problems("event", received[0]["object"]) == []
    finally:
        ven.stop()
        bl.stop()


def _wait(condition: Any, what: str, timeout_s: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
