"""`bessai vpp vtn serve`: refuses to start without clients (one line, exit 2) and serves the
VTN with the clients it is given, from options or BESSAI_VTN_CLIENTS, SQLite-backed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "BESSAI_VTN_CLIENTS"} | env
    return subprocess.run(
        [sys.executable, "-m", "bessai.cli", "vpp", "vtn", "serve", *args],
        capture_output=True, text=True, timeout=60, env=clean,
    )  # fmt: skip


def test_no_clients_and_bad_clients_are_one_line_errors() -> None:
    out = _run([])
    assert out.returncode == 2
    assert out.stderr.startswith("error: no clients")
    out = _run(["--client", "just-a-name"])
    assert out.returncode == 2
    assert "expected ID:SECRET:ROLE" in out.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serves_the_vtn_with_its_clients(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "BESSAI_VTN_CLIENTS"}
    env["BESSAI_VTN_CLIENTS"] = "ops:ops-secret:bl"
    command = [sys.executable, "-m", "bessai.cli", "vpp", "vtn", "serve", "--port", str(port),
               "--db", str(tmp_path / "vtn.sqlite")]  # fmt: skip
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}/openadr3/3.1.0"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/auth/server", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the VTN did not start"
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            time.sleep(0.2)
        form = {"grant_type": "client_credentials"}
        token = httpx.post(f"{base}/auth/token", data=form, auth=("ops", "ops-secret")).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        made = httpx.post(f"{base}/programs", json={"programName": "p"}, headers=headers)
        assert made.status_code == 201
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert (tmp_path / "vtn.sqlite").exists()
