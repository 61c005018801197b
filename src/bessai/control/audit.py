"""The command audit: every command the gateway decided (time, site, controller, request, guard
outcome and reason, registers written, read-back result) in a durable local SQLite store."""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bessai.errors import BessaiError

SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    site TEXT NOT NULL,
    controller TEXT NOT NULL,
    reason TEXT NOT NULL,
    requested_w REAL NOT NULL,
    setpoint_w REAL NOT NULL,
    outcome TEXT NOT NULL,
    guard_reason TEXT NOT NULL,
    binding_limit TEXT,
    writes TEXT NOT NULL,
    verified INTEGER NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS commands_site_ts ON commands (site, ts);
"""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    ts: datetime
    site: str
    controller: str
    reason: str
    requested_w: float
    setpoint_w: float
    outcome: str
    guard_reason: str
    binding_limit: str | None
    writes: list[dict[str, Any]]
    verified: bool
    error: str | None = None


class AuditLog:
    """Append-only; safe to call from the event loop's worker threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise BessaiError(f"cannot open the audit log {path}: {exc}") from None
        self._lock = threading.Lock()

    def append(self, record: AuditRecord) -> None:
        row = asdict(record)
        row["ts"] = record.ts.isoformat()
        row["writes"] = json.dumps(record.writes)
        row["verified"] = int(record.verified)
        with self._lock:
            self._db.execute(
                "INSERT INTO commands (ts, site, controller, reason, requested_w, setpoint_w, "
                "outcome, guard_reason, binding_limit, writes, verified, error) VALUES "
                "(:ts, :site, :controller, :reason, :requested_w, :setpoint_w, :outcome, "
                ":guard_reason, :binding_limit, :writes, :verified, :error)",
                row,
            )

    def query(
        self,
        site: str | None = None,
        limit: int = 50,
        offset: int = 0,
        since: datetime | None = None,
        outcome: str | None = None,
    ) -> list[dict[str, Any]]:
        clauses, params = [], []
        if site is not None:
            clauses.append("site = ?")
            params.append(site)
        if since is not None:
            clauses.append("ts >= ?")
            params.append(since.isoformat())
        if outcome is not None:
            clauses.append("outcome = ?")
            params.append(outcome)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            cursor = self._db.execute(
                f"SELECT * FROM commands {where} ORDER BY id DESC LIMIT ? OFFSET ?",
                (*params, limit, offset),
            )
            columns = [c[0] for c in cursor.description]
            rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        for row in rows:
            row["writes"] = json.loads(row["writes"])
            row["verified"] = bool(row["verified"])
        return rows

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_readonly(path: Path) -> AuditLog:
    if not path.exists():
        raise BessaiError(f"no audit log at {path} (has the gateway run with this data_dir?)")
    return AuditLog(path)
