"""Run by tests/vpp/test_third_party_elaad.py under a Python 3.12 with ElaadNL's
openadr3-client (Apache-2.0) installed: the BL and VEN flows of that strict, typed client
against our VTN, OpenADR 3.1.0. Prints one JSON line with what it saw. Not a pytest module."""

import json
import sys
from datetime import UTC, datetime, timedelta

from openadr3_client._models.common.interval import Interval
from openadr3_client._models.common.interval_period import IntervalPeriod
from openadr3_client.bl.http_factory import BusinessLogicHttpClientFactory
from openadr3_client.oadr310.models.event.event import NewEvent
from openadr3_client.oadr310.models.event.event_payload import EventPayload, EventPayloadType
from openadr3_client.oadr310.models.program.program import NewProgram
from openadr3_client.oadr310.models.report.report import NewReport, ReportResource
from openadr3_client.oadr310.models.report.report_payload import ReportPayload, ReportPayloadType
from openadr3_client.oadr310.models.resource.resource import NewResourceVenRequest
from openadr3_client.oadr310.models.ven.ven import NewVenVenRequest
from openadr3_client.ven.http_factory import VirtualEndNodeHttpClientFactory
from openadr3_client.version import OADRVersion


def main(url: str) -> None:
    common = {
        "vtn_base_url": url,
        "token_url": None,
        "allow_insecure_http": True,
        "version": OADRVersion.OADR_310,
    }
    bl = BusinessLogicHttpClientFactory.create_http_bl_client(
        client_id="bl-client", client_secret="bl-secret", **common
    )
    ven = VirtualEndNodeHttpClientFactory.create_http_ven_client(
        client_id="ven-3p", client_secret="secret-3p", **common
    )

    program = bl.programs.create_program(new_program=NewProgram(program_name="elaad-program"))
    registered = ven.vens.create_ven(new_ven=NewVenVenRequest(ven_name="elaad-ven"))
    resource = ven.resources.create_resource(
        new_resource=NewResourceVenRequest(resource_name="elaad-battery", venID=registered.id)
    )
    start = datetime.now(UTC) + timedelta(hours=1)
    event = bl.events.create_event(
        new_event=NewEvent(
            programID=program.id,
            event_name="elaad-event",
            targets=("elaad-ven",),
            interval_period=IntervalPeriod(start=start, duration=timedelta(minutes=30)),
            intervals=(
                Interval(
                    id=11,
                    payloads=(
                        EventPayload(type=EventPayloadType.IMPORT_CAPACITY_LIMIT, values=(2.5,)),
                    ),
                ),
            ),
        )
    )
    seen = ven.events.get_events(target=None, pagination=None, program_id=program.id)
    report = ven.reports.create_report(
        new_report=NewReport(
            eventID=event.id,
            client_name="elaad-ven",
            resources=(
                ReportResource(
                    resource_name="elaad-battery",
                    intervals=(
                        Interval(
                            id=11,
                            payloads=(ReportPayload(type=ReportPayloadType.USAGE, values=(1.25,)),),
                        ),
                    ),
                ),
            ),
        )
    )
    reports = bl.reports.get_reports(
        pagination=None, program_id=None, event_id=event.id, client_name=None
    )
    print(json.dumps({
        "program": program.id, "ven": registered.id, "ven_client": registered.client_id,
        "resource": resource.id, "event": event.id, "seen": [e.id for e in seen],
        "interval_ids": [i.id for i in seen[0].intervals], "report": report.id,
        "report_client": report.client_id, "reports": [r.id for r in reports],
    }))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
