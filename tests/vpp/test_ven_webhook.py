"""The VEN subscribes by webhook when it has a callback URL: the VTN's notification reaches the
gateway's /api/v1/vpp/notify/<site> route (no API key, the VEN's own token) and the VEN polls
at once, long before its poll period. A wrong token is a 401."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bessai.runtime.http import serve_http
from bessai.runtime.service import Runtime
from tests.conftest import FAST_SETTINGS
from tests.process import free_port
from tests.vpp.conftest import RunningVtn
from tests.vpp.test_ven_e2e import gateway_config, post_event, wait_for


async def test_a_webhook_notification_makes_the_ven_poll_at_once(
    vtn_server: RunningVtn, tmp_path: Path
) -> None:
    port = free_port()
    config = gateway_config(tmp_path, vtn_server.url, [("site-a", "ven-a", "secret-a")])
    vpp = config.sites[0].vpp
    vpp.poll_s = 600.0
    vpp.callback_url = f"http://127.0.0.1:{port}/api/v1/vpp/notify/site-a"
    runtime = Runtime(config, FAST_SETTINGS)
    bl = vtn_server.bl()
    http = None
    try:
        await runtime.start()
        http, _ = await serve_http(runtime.monitor, "127.0.0.1", port, runtime.vens)
        ven = runtime.vens["site-a"]
        await wait_for(lambda: ven.status.subscription_id is not None, 15, "the subscription")
        (sub,) = vtn_server.vtn.store.all("subscriptions")
        assert sub["clientID"] == "ven-a"
        start = datetime.now(UTC) + timedelta(minutes=5)
        event_id = await asyncio.to_thread(post_event, bl, "site-a", start, 60)
        await wait_for(lambda: event_id in ven.events, 10, "the event, by webhook")
        async with httpx.AsyncClient() as client:
            wrong = await client.post(vpp.callback_url, headers={"Authorization": "Bearer nope"})
            other = await client.post(
                f"http://127.0.0.1:{port}/api/v1/vpp/notify/nowhere",
                headers={"Authorization": f"Bearer {ven.notify_token}"},
            )
        assert wrong.status_code == 401
        assert other.status_code == 401
        assert vtn_server.vtn.notified >= 1
    finally:
        bl.close()
        if http is not None:
            http.should_exit = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(http.shutdown(), timeout=2)
        await runtime.stop()
