"""Pieces of the fleet end-to-end tests: gateways with embedded simulators publishing to
JetStream (in this process), `bessai fleet serve` subprocesses (killable), and what the
gateways' outboxes sent."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bessai.api.keys import KeyStore, Role
from bessai.config import Config
from bessai.runtime.service import Runtime
from tests.conftest import FAST_SETTINGS
from tests.process import LOOPBACK, ServerProcess, free_port

Key = tuple[str, str, int]


def gateway_config(data_dir: Path, site_id: str, nats_port: int, **site: Any) -> Config:
    """One site on an embedded simulator, cycling fast, publishing to JetStream."""
    site_data: dict[str, Any] = {
        "id": site_id,
        "cycle_s": 0.1,
        "slow_every": 5,
        "devices": [
            {
                "host": LOOPBACK,
                "port": 0,
                "timeout_s": 0.5,
                "wait_after_connect_s": 0.05,
                "cooldown_s": 0.0,
                "retries": 1,
            }
        ],
        "battery": {"capacity_kwh": 15, "max_charge_w": 5000, "max_discharge_w": 5000},
        "safety": {"stale_after_s": 1.0, "recovery_cycles": 2},
        "simulator": {"enabled": True},
        **site,
    }
    return Config.model_validate(
        {
            "gateway": {"data_dir": str(data_dir)},
            "telemetry": {
                "outbox_path": str(data_dir / "outbox.sqlite"),
                "sinks": [
                    {
                        "type": "nats",
                        "servers": [f"nats://{LOOPBACK}:{nats_port}"],
                        "backoff_initial_s": 0.1,
                        "backoff_max_s": 0.5,
                        "connect_timeout_s": 2,
                        "ack_timeout_s": 2,
                    }
                ],
            },
            "sites": [site_data],
        }
    )


def make_gateway(tmp_path: Path, site_id: str, nats_port: int, **site: Any) -> Runtime:
    """A gateway runtime (not started)."""
    data_dir = tmp_path / f"gw-{site_id}"
    return Runtime(gateway_config(data_dir, site_id, nats_port, **site), FAST_SETTINGS)


def sent_keys(runtime: Runtime) -> set[Key]:
    """Every (site, boot, seq) a stopped gateway's outbox handed to its sinks: the seqs it
    gave out, minus rows still waiting in the outbox."""
    path = runtime.config.telemetry.outbox_path
    boot = runtime.telemetry.boot_id
    with sqlite3.connect(path) as db:
        given = {(site, boot, s) for site, n in db.execute("SELECT site_id, next_seq FROM site_seq")
                 for s in range(n)}  # fmt: skip
        waiting = {(site, boot, s) for site, s in db.execute("SELECT site_id, seq FROM outbox")}
    return given - waiting


def fleet_config_file(folder: Path, dsn: str, nats_port: int, http_port: int, **fleet: Any) -> Path:
    """A fleet-only configuration with its keys file next to it."""
    folder.mkdir(parents=True, exist_ok=True)
    table = {
        "database_url": dsn,
        "nats_url": f"nats://{LOOPBACK}:{nats_port}",
        "http_port": http_port,
        "data_dir": str(folder),
        **fleet,
    }
    lines = ["[fleet]"] + [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    path = folder / "fleet.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def read_key(folder: Path) -> str:
    """A read key in the fleet's keys file."""
    return KeyStore(folder / "api_keys.json").add(f"reader-{time.monotonic_ns()}", Role.READ)


class FleetProcess(ServerProcess):
    """`bessai fleet serve` as a subprocess on its own HTTP port."""

    def __init__(self, config: Path, port: int, log_path: Path) -> None:
        argv = [sys.executable, "-m", "bessai.cli", "fleet", "serve", "--config", str(config)]
        super().__init__(
            "fleet serve",
            argv,
            port,
            log_path,
            env={"PYTHONUNBUFFERED": "1"},
            start_timeout_s=30,
            stop_timeout_s=15,
        )
        self.config = config

    @classmethod
    def create(cls, folder: Path, dsn: str, nats_port: int, **fleet: Any) -> FleetProcess:
        """A fleet service with its configuration in `folder` on a free port (not started)."""
        port = free_port()
        config = fleet_config_file(folder, dsn, nats_port, port, **fleet)
        return cls(config, port, folder / "serve.log")

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    async def get(self, path: str, key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.get(self.url(path), headers=headers)

    async def health(self) -> dict[str, Any]:
        body: dict[str, Any] = (await self.get("/health")).json()
        return body
