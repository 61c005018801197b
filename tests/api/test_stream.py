"""The live stream over a real socket: server-sent events after each cycle, with a key."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from bessai.runtime.http import serve_http

from .conftest import RunningGateway


def _events(response: httpx.Response, count: int, timeout_s: float = 15.0) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    name, data = "", []
    deadline = time.monotonic() + timeout_s
    for line in response.iter_lines():
        if time.monotonic() > deadline:
            break
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            if name == "status":
                events.append(json.loads("\n".join(data)))
                if len(events) == count:
                    break
            name, data = "", []
    return events


def test_events_stream_status_after_each_cycle(running_gateway: RunningGateway) -> None:
    url = f"{running_gateway.base_url}/api/v1/events"
    with httpx.stream("GET", url, timeout=20) as denied:
        assert denied.status_code == 401
    headers = {"X-API-Key": running_gateway.keys["read"]}
    with httpx.stream("GET", url, headers=headers, timeout=20) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        events = _events(response, 3)
    assert len(events) == 3
    cycles = [e["sites"][0]["cycle"] for e in events]
    assert cycles == sorted(cycles)
    assert cycles[-1] > cycles[0]  # live: each event is a newer cycle
    site = events[-1]["sites"][0]
    assert site["site"] == "demo"
    assert 0 < site["soc_pct"] < 100
    assert isinstance(events[-1]["alerts"], list)


async def test_live_streams_are_capped_and_free_their_slot(make_api: Any) -> None:
    api = await make_api(api={"max_streams": 1})
    http, port = await serve_http(api.monitor, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}/api/v1/events"
    try:
        async with httpx.AsyncClient(headers=api.auth("read"), timeout=10) as client:
            async with client.stream("GET", url) as first:
                assert first.status_code == 200
                # Held: a discarded line iterator is finalised by the garbage collector, which
                # closes the stream and races the next request for the slot.
                lines = first.aiter_lines()
                await anext(lines)  # the stream is open and counted
                second = await client.get(url)
                assert second.status_code == 503
                assert second.json()["detail"] == "1 live streams already open"
            for _ in range(50):  # the closed stream gives its slot back
                async with client.stream("GET", url) as third:
                    if third.status_code == 200:
                        break
                await asyncio.sleep(0.1)
            assert third.status_code == 200
    finally:
        http.should_exit = True
        await http.shutdown()


async def test_a_stopping_gateway_ends_open_streams_at_once(make_api: Any) -> None:
    api = await make_api()
    http, port = await serve_http(api.monitor, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}/api/v1/events"
    try:
        async with (
            httpx.AsyncClient(headers=api.auth("read"), timeout=10) as client,
            client.stream("GET", url) as stream,
        ):
            lines = stream.aiter_lines()
            await anext(lines)
            api.gateway.stop_event.set()  # what Ctrl-C does first: no more cycles
            started = time.monotonic()
            async for _ in lines:
                pass  # drains to the end of the stream
            assert time.monotonic() - started < 2.5
    finally:
        http.should_exit = True
        await http.shutdown()
