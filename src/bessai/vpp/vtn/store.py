"""Where the VTN keeps its objects: one protocol, two stores (memory for tests and a
throw-away VTN, SQLite for one that survives a restart). Objects are the JSON the API answers."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Protocol

Obj = dict[str, Any]


class VtnStore(Protocol):
    """Objects by kind ("programs", "events", ...) and id, in creation order."""

    def put(self, kind: str, obj: Obj) -> None:
        """Insert or replace the object with ``obj["id"]``."""
        ...

    def delete(self, kind: str, object_id: str) -> None:
        """Remove one object (absent: nothing happens)."""
        ...

    def get(self, kind: str, object_id: str) -> Obj | None:
        """One object, or None."""
        ...

    def all(self, kind: str) -> list[Obj]:
        """Every object of a kind, oldest first."""
        ...


class MemoryStore:
    """Everything in dicts; gone when the process ends."""

    def __init__(self) -> None:
        self._kinds: dict[str, dict[str, Obj]] = {}

    def put(self, kind: str, obj: Obj) -> None:
        """Insert or replace (a replaced object keeps its place)."""
        self._kinds.setdefault(kind, {})[obj["id"]] = obj

    def delete(self, kind: str, object_id: str) -> None:
        """Remove one object."""
        self._kinds.get(kind, {}).pop(object_id, None)

    def get(self, kind: str, object_id: str) -> Obj | None:
        """One object, or None."""
        return self._kinds.get(kind, {}).get(object_id)

    def all(self, kind: str) -> list[Obj]:
        """Every object of a kind, oldest first."""
        return list(self._kinds.get(kind, {}).values())


class SqliteStore:
    """One table of JSON objects (WAL); the VTN's state across restarts."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS objects (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, UNIQUE (kind, id))"
        )

    def put(self, kind: str, obj: Obj) -> None:
        """Insert or replace (a replaced object keeps its place)."""
        body = json.dumps(obj, separators=(",", ":"))
        with self._lock:
            self._db.execute(
                "INSERT INTO objects (kind, id, body) VALUES (?, ?, ?)"
                " ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body",
                (kind, obj["id"], body),
            )

    def delete(self, kind: str, object_id: str) -> None:
        """Remove one object."""
        with self._lock:
            self._db.execute("DELETE FROM objects WHERE kind = ? AND id = ?", (kind, object_id))

    def get(self, kind: str, object_id: str) -> Obj | None:
        """One object, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM objects WHERE kind = ? AND id = ?", (kind, object_id)
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def all(self, kind: str) -> list[Obj]:
        """Every object of a kind, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM objects WHERE kind = ? ORDER BY seq", (kind,)
            ).fetchall()
        return [dict(json.loads(r[0])) for r in rows]

    def close(self) -> None:
        """Close the database."""
        self._db.close()
