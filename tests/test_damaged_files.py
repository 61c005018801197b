"""A damaged audit log or outbox never stops the gateway and is never deleted (issue 13, G)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bessai.control.audit import AuditLog, AuditRecord, open_readonly
from bessai.errors import BessaiError


def _record() -> AuditRecord:
    return AuditRecord(
        ts=datetime(2026, 3, 1, 12, tzinfo=UTC),
        site="a",
        controller="manual",
        reason="test",
        requested_w=500.0,
        setpoint_w=500.0,
        outcome="allowed",
        guard_reason="within limits",
        binding_limit=None,
        writes=[],
        verified=True,
    )


def _truncated_audit(path: Path) -> bytes:
    log = AuditLog(path)
    for _ in range(2000):
        log.append(_record())
    log.close()
    os.truncate(path, path.stat().st_size // 2)
    return path.read_bytes()


def _kept(path: Path) -> list[Path]:
    kept = path.parent.glob(f"{path.name}.corrupt-*")
    return sorted(p for p in kept if not p.name.endswith(("-wal", "-shm", "-journal")))


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_a_damaged_audit_log_is_kept_and_a_new_one_started(tmp_path: Path, how: str) -> None:
    path = tmp_path / "audit.sqlite"
    if how == "garbage":
        path.write_bytes(os.urandom(8192))
        damaged = path.read_bytes()
    else:
        damaged = _truncated_audit(path)
    with capture_logs() as logs:
        log = AuditLog(path)
    (kept,) = _kept(path)
    assert kept.read_bytes() == damaged
    assert log.kept_damaged == kept
    assert [e["event"] for e in logs if e["log_level"] == "critical"] == [
        "audit log damaged: kept aside, new audit log started"
    ]
    log.append(_record())
    assert [r["site"] for r in log.query()] == ["a"]
    log.close()


def test_reading_a_damaged_audit_log_reports_it_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    damaged = _truncated_audit(path)
    with pytest.raises(BessaiError, match=r"audit log .*audit.sqlite is damaged \(database disk"):
        open_readonly(path)
    assert path.read_bytes() == damaged
    assert _kept(path) == []
    config = tmp_path / "site.toml"
    config.write_text(f"[gateway]\ndata_dir = '{tmp_path}'\n[[sites]]\nid = 'a'\n")
    out = subprocess.run(
        [sys.executable, "-m", "bessai.cli", "audit", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1, out.stderr
    assert "is damaged" in out.stderr
    assert "Traceback" not in out.stderr
    assert path.read_bytes() == damaged


@pytest.mark.slow
def test_the_gateway_starts_on_a_damaged_outbox_and_audit_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    outbox, audit = data / "outbox.sqlite", data / "audit.sqlite"
    outbox.write_bytes(b"\x00garbage" * 1000)
    damaged_audit = _truncated_audit(audit)
    config = tmp_path / "site.toml"
    config.write_text(
        f"""
[gateway]
data_dir = "{data}"
http_port = 0
status_display = false
[[sites]]
id = "a"
cycle_s = 0.5
[sites.simulator]
enabled = true
[[sites.devices]]
port = 0
[[telemetry.sinks]]
type = "lake"
path = "lake"
flush_interval_s = 0
"""
    )
    out = subprocess.run(
        [sys.executable, "-m", "bessai.cli", "--log-level", "warning", "run", "--config",
         str(config), "--duration-s", "3", "--no-status"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "outbox damaged: moved aside, new outbox started" in out.stderr
    assert "audit log damaged: kept aside, new audit log started" in out.stderr
    assert _kept(outbox)[0].read_bytes() == b"\x00garbage" * 1000
    assert _kept(audit)[0].read_bytes() == damaged_audit
    # The new files work: the cycle recorded telemetry and the audit opens.
    assert list((data / "lake").rglob("*.parquet"))
    open_readonly(audit).close()
