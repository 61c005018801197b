"""Damaged SQLite files (the outbox, the command audit): recognise them and move them aside.

A power cut on a disk that lies about fsync, a failing SD card or a stray copy can leave a
database SQLite cannot read: "file is not a database" (the header is gone) or "database disk
image is malformed" (pages are). Retrying never helps, and refusing to start would stop the
battery's control and every new record until someone comes. So the owner moves the damaged file
aside, never deleting it, as `<name>.corrupt-<UTC time>` (with its `-wal` and `-shm`, which
belong to it and must not be applied to a new file), starts a new one, and says so loudly.
Read-only inspection (`bessai audit`) reports the damage instead and changes nothing.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

# SQLITE_CORRUPT, SQLITE_NOTADB: the file is damaged, not busy, locked or unreadable by
# permission (those are not fixed by moving the file aside).
_DAMAGE_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_COMPANIONS = ("-wal", "-shm", "-journal")


class DamagedFileError(Exception):
    """The SQLite file at `path` is damaged; `reason` is SQLite's word for it."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path} is damaged: {reason}")
        self.path = path
        self.reason = reason


def is_damage(exc: BaseException) -> bool:
    """True for SQLite's "malformed" and "not a database" errors."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code in _DAMAGE_CODES
    text = str(exc)
    return "malformed" in text or "not a database" in text


def probe(path: Path) -> None:
    """Raise DamagedFileError unless SQLite's `quick_check` passes on `path` (which must
    exist). It reads every page once, a few ms per MB, at open only. The connection is read-only:
    a read-write one would replay or checkpoint the file's WAL on close and so change the
    very file it found damaged; a missing -shm is the most it creates."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            raise DamagedFileError(path, str(exc)) from exc
        raise
    result = "\n".join(str(r[0]) for r in rows)
    if result != "ok":
        details = [line.strip() for line in result.splitlines() if "in database" not in line]
        raise DamagedFileError(path, f"quick_check: {details[0] if details else result}")


def replace_damaged(path: Path, build: Callable[[Path], None], now: datetime | None = None) -> Path:
    """Keep the damaged `path` as `<name>.corrupt-<YYYYmmddTHHMMSSZ>` and put a new database,
    made by `build(tmp_path)`, in its place; returns where the damaged file is kept.

    Nothing is deleted, and a crash at any step leaves at `path` either the damaged file (which
    the next open repairs again) or the complete new one, never a half-made one: the new file
    is built aside and renamed over `path` last. The damaged file is kept by a hard link (a
    copy where the filesystem has none); its -wal/-shm/-journal move with it, as they belong
    to it and must not be applied to the new file."""
    tmp = path.with_name(path.name + ".repair")
    for suffix in ("", *_COMPANIONS):  # a previous attempt's leftovers, never the damaged file
        tmp.with_name(tmp.name + suffix).unlink(missing_ok=True)
    build(tmp)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    kept = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while kept.exists():  # two repairs within a second: never overwrite a kept file
        n += 1
        kept = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    try:
        os.link(path, kept)
    except OSError:
        shutil.copy2(path, kept)
    for suffix in _COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            os.replace(companion, kept.with_name(kept.name + suffix))
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the renames survive a power cut
    finally:
        os.close(fd)
    return kept
