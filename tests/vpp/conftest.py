"""A real VTN on a free loopback port (uvicorn in a thread, so synchronous third-party
clients can talk to it from the test), its clients and tokens."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from bessai.vpp.vtn.app import PREFIX, create_vtn_app
from bessai.vpp.vtn.auth import VtnClient
from bessai.vpp.vtn.service import Vtn

CLIENTS = (
    VtnClient("bl-client", "bl-secret", "bl"),
    VtnClient("ven-a", "secret-a", "ven"),
    VtnClient("ven-b", "secret-b", "ven"),
    VtnClient("ven-3p", "secret-3p", "ven"),
)


@dataclass
class RunningVtn:
    """A VTN served on loopback: its base URL and the service object behind it."""

    vtn: Vtn
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def token(self, client_id: str, secret: str) -> str:
        """A bearer token by the form-body flow."""
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        answer = httpx.post(f"{self.url}/auth/token", data=form, timeout=5)
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    def bl(self) -> httpx.Client:
        """A synchronous client with a business-logic token."""
        headers = {"Authorization": f"Bearer {self.token('bl-client', 'bl-secret')}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=5)


def start_vtn(vtn: Vtn, port: int = 0) -> RunningVtn:
    """Serve `vtn` on 127.0.0.1 (`port` 0: any free one) in a thread."""
    config = uvicorn.Config(
        create_vtn_app(vtn), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the VTN did not start")
        time.sleep(0.01)
    bound = port
    for srv in server.servers:
        for sock in srv.sockets:
            bound = int(sock.getsockname()[1])
    return RunningVtn(vtn, f"http://127.0.0.1:{bound}{PREFIX}", server, thread)


def stop_vtn(running: RunningVtn) -> None:
    """Stop the server and wait for its thread."""
    running.server.should_exit = True
    running.thread.join(timeout=10)


@pytest.fixture
def vtn_server() -> Iterator[RunningVtn]:
    """A fresh in-memory VTN with the test clients."""
    running = start_vtn(Vtn(CLIENTS))
    try:
        yield running
    finally:
        stop_vtn(running)
