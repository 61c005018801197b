"""Nothing is ignored silently: a site whose battery is empty cannot keep a 0.2 kW import limit
(the safety verdict refuses the discharge) and its report says CANNOT_COMPLY with the reason;
a site whose operator opts out (through the API) stops acting and reports OPTED_OUT."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bessai.api.app import create_app
from bessai.runtime.service import Runtime
from tests.conftest import FAST_SETTINGS
from tests.vpp.conftest import RunningVtn
from tests.vpp.test_ven_e2e import gateway_config, payload, reports_of, wait_for

#: Below the simulated load at any hour (1.5 kW mean, at least half of it at night, with
#: noise): only the battery could keep the meter under it, and this one is empty.
LIMIT_KW = 0.2


async def test_empty_battery_cannot_comply_and_opt_out_is_reported(
    vtn_server: RunningVtn, tmp_path: Path
) -> None:
    config = gateway_config(
        tmp_path, vtn_server.url, [("site-a", "ven-a", "secret-a"), ("site-b", "ven-b", "secret-b")]
    )
    for site in config.sites:
        site.controllers.time_of_use = []  # idle: the inverter covers the 1.5 kW load itself
    config.sites[0].simulator.initial_soc_pct = 4.0  # below safety.soc_min_pct (5 %)
    runtime = Runtime(config, FAST_SETTINGS)
    bl = vtn_server.bl()
    try:
        await runtime.start()
        vens = runtime.vens
        await wait_for(lambda: all(v.status.resource_id for v in vens.values()), 15, "registration")
        start = datetime.now(UTC) + timedelta(seconds=2)
        program = bl.post("/programs", json={"programName": "both"}).json()["id"]
        event = {
            "programID": program,
            "targets": ["site-a", "site-b"],
            "intervalPeriod": {"start": start.isoformat(), "duration": "PT6S"},
            "intervals": [
                {"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [LIMIT_KW]}]}
            ],
        }
        event_id = (await asyncio.to_thread(bl.post, "/events", json=event)).json()["id"]
        await wait_for(lambda: all(event_id in v.events for v in vens.values()), 10, "the event")
        transport = httpx.ASGITransport(app=create_app(runtime.monitor, runtime.vens))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            answer = await client.post(f"/api/v1/sites/site-b/vpp/events/{event_id}/opt-out")
            unknown = await client.post("/api/v1/sites/site-b/vpp/events/nope/opt-out")
        assert answer.status_code == 200, answer.text
        assert answer.json()["opted_out"] == [event_id]
        assert unknown.status_code == 404
        await wait_for(lambda: len(reports_of(vtn_server, event_id)) == 2, 30, "both reports")
        by_client = {r["clientID"]: r for r in reports_of(vtn_server, event_id)}
        outcome, why = payload(by_client["ven-a"], "X_BESSAI_COMPLIANCE")
        assert outcome == "CANNOT_COMPLY"
        assert "import peaked at" in why
        assert "safety" in why
        assert payload(by_client["ven-b"], "X_BESSAI_COMPLIANCE")[0] == "OPTED_OUT"
    finally:
        bl.close()
        await runtime.stop()
