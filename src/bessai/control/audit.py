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

import structlog

from bessai import sqlitefile
from bessai.errors import BessaiError
from bessai.sqlitefile import DamagedFileError

log = structlog.get_logger(__name__)

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
    """Append-only; safe to call from the event loop's worker threads.

    A damaged file (bessai.sqlitefile) is kept as `audit.sqlite.corrupt-<time>` and a new log
    is started, with a critical log line: the gateway must keep recording commands. With
    `repair=False` (read-only inspection) the damage is an error naming the file instead."""

    def __init__(self, path: Path, *, repair: bool = True) -> None:
        self.path = path
        self.kept_damaged: Path | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = self._open()
            except DamagedFileError as damage:
                if not repair:
                    raise BessaiError(
                        f"the audit log {path} is damaged ({damage.reason}); the gateway keeps "
                        "it aside and starts a new one at its next start"
                    ) from None
                self.kept_damaged = sqlitefile.replace_damaged(path, lambda tmp: tmp.touch())
                log.critical(
                    "audit log damaged: kept aside, new audit log started",
                    damaged=str(path),
                    kept_as=str(self.kept_damaged),
                    reason=damage.reason,
                )
                self._db = self._open()
        except (OSError, sqlite3.Error) as exc:
            raise BessaiError(f"cannot open the audit log {path}: {exc}") from None
        self._lock = threading.Lock()

    def _open(self) -> sqlite3.Connection:
        if self.path.exists() and self.path.stat().st_size > 0:
            sqlitefile.probe(self.path)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
        except BaseException as exc:
            db.close()
            if isinstance(exc, sqlite3.DatabaseError) and sqlitefile.is_damage(exc):
                raise DamagedFileError(self.path, str(exc)) from exc
            raise
        return db

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
    """Open an audit log for reading (the CLI's `bessai audit`), never creating it."""
    if not path.exists():
        raise BessaiError(f"no audit log at {path} (has the gateway run with this data_dir?)")
    return AuditLog(path, repair=False)
