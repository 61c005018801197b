"""`bessai run` with `[proxy] enabled`: the proxy listens before the first cycle, says where, and
re-serves the embedded simulator's inverter to a Modbus client; a busy port is a one-line error."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from pathlib import Path

import tomli_w
from pymodbus.client import AsyncModbusTcpClient

from .clients import code_of


def _config(tmp_path: Path, proxy_port: int) -> Path:
    config = {
        "gateway": {"data_dir": str(tmp_path / "data"), "http_port": 0, "status_display": False},
        "api": {"dev_mode": True},
        "proxy": {"enabled": True, "port": proxy_port},
        "sites": [
            {
                "id": "demo",
                "cycle_s": 0.5,
                "devices": [{"port": 0, "wait_after_connect_s": 0.05, "timeout_s": 1.0}],
                "safety": {"stale_after_s": 3.0},
                "simulator": {"enabled": True},
            }
        ],
    }
    path = tmp_path / "gateway.toml"
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    return path


async def _bessai(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bessai.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "300"},
    )  # fmt: skip


async def test_bessai_run_serves_the_inverter_on_the_proxy_port(tmp_path: Path) -> None:
    proc = await _bessai("run", "--config", str(_config(tmp_path, 0)), "--duration-s", "20")
    assert proc.stdout is not None
    port = None
    output = b""
    try:
        while port is None:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
            assert line, output.decode()
            output += line
            found = re.search(rb"modbus proxy 127\.0\.0\.1:(\d+)", line)
            port = int(found.group(1)) if found else None
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
        assert await client.connect()
        try:
            for _ in range(50):
                model = await client.read_holding_registers(30000, count=15, device_id=1)
                if code_of(model) is None:
                    break
                await asyncio.sleep(0.2)  # busy until the first cycle
            assert code_of(model) is None
            text = b"".join(w.to_bytes(2, "big") for w in model.registers).rstrip(b"\0")
            assert text == b"SUN2000-10KTL-M1"
        finally:
            client.close()
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=20)


async def test_a_busy_proxy_port_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await _bessai("run", "--config", str(_config(tmp_path, port)), "--duration-s", "5")
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode != 0
    text = out.decode()
    assert f"proxy: cannot listen on 127.0.0.1:{port}: already in use" in text
    assert "register write" not in text  # refused before anything started
    assert "Traceback" not in text
