"""`bessai vpp vtn serve`: refuses to start without clients (a BessaiError: one line) and serves the
VTN with the clients it is given, from options or BESSAI_VTN_CLIENTS, SQLite-backed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bessai.errors import BessaiError
from tests.process import free_port


def test_no_clients_and_bad_clients_are_one_line_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from bessai.cli import app

    monkeypatch.delenv("BESSAI_VTN_CLIENTS", raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["vpp", "vtn", "serve"])
    assert isinstance(result.exception, BessaiError)
    assert str(result.exception).startswith("no clients")
    result = runner.invoke(app, ["vpp", "vtn", "serve", "--client", "just-a-name"])
    assert isinstance(result.exception, BessaiError)
    assert "expected ID:SECRET:ROLE" in str(result.exception)


def test_serves_the_vtn_with_its_clients(tmp_path: Path) -> None:
    port = free_port()
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
