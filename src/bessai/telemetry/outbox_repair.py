"""What the outbox does when its file is damaged at open (see bessai.sqlitefile).

The damaged file is moved aside, never deleted, and a new outbox starts. Its rows are not
forwarded: SQLite cannot read a damaged table reliably (a broken interior page hides every row
under it), and `sqlite3 FILE .recover` does page-level recovery by hand far better.

What must not be lost is `seq`: consumers de-duplicate on (site_id, seq), and JetStream drops a
`Nats-Msg-Id` it saw within its duplicate window, so a new outbox that started over at 0 would
have its envelopes discarded downstream as duplicates of old ones. The per-site counters are
salvaged from the damaged file when SQLite can still read them; when it cannot, every site
continues from a floor that no earlier seq can have reached: the current Unix time in
milliseconds (a site emits far fewer than one envelope per millisecond, so this holds even
after a second repair). `bessai tail --check` then reports the jump as a gap, which is honest:
whatever the damaged file held is missing downstream.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from bessai.telemetry.outbox_schema import OUTBOX_FORMAT, OUTBOX_VERSION, SCHEMA, split_sql


@dataclass(frozen=True, slots=True)
class OutboxRepair:
    """A damaged outbox replaced at open."""

    damaged: Path  # where the damaged file was
    moved_to: Path  # where it is kept
    reason: str  # SQLite's word for the damage
    next_seq: dict[str, int]  # salvaged per-site counters (empty when unreadable)
    seq_floor: int | None  # set when the counters could not be salvaged
    at_us: int

    def describe(self) -> str:
        seq = (
            f"seq continues from the salvaged counters ({len(self.next_seq)} site(s))"
            if self.seq_floor is None
            else f"the seq counters were unreadable: every site continues from {self.seq_floor}"
        )
        return (
            f"outbox {self.damaged} was damaged ({self.reason}); it is kept as "
            f"{self.moved_to} (its rows are not forwarded) and a new outbox was started; {seq}"
        )


def seq_floor_now() -> int:
    """A seq no earlier envelope of any site can have reached (module docstring)."""
    return time.time_ns() // 1_000_000


def salvage_next_seq(path: Path) -> dict[str, int] | None:
    """The per-site next seq from a damaged outbox, or None when SQLite cannot read them.

    Rows still in the outbox may hold a higher seq than the counter table, so the highest
    readable row counts too; without the counter table a drained site would be missed."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        try:
            counters = {
                str(site): int(n)
                for site, n in conn.execute("SELECT site_id, next_seq FROM site_seq")
            }
        except sqlite3.Error:
            return None
        with contextlib.suppress(sqlite3.Error):
            for site, top in conn.execute("SELECT site_id, MAX(seq) FROM outbox GROUP BY site_id"):
                counters[str(site)] = max(counters.get(str(site), 0), int(top) + 1)
        return counters
    finally:
        conn.close()


def build_replacement(path: Path, next_seq: dict[str, int], seq_floor: int | None) -> None:
    """A new, empty outbox at `path` that continues `seq` (the module docstring)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("BEGIN IMMEDIATE")
        for stmt in split_sql(SCHEMA):
            conn.execute(stmt)
        conn.execute(
            "INSERT INTO meta VALUES ('format', ?), ('version', ?)",
            (OUTBOX_FORMAT, OUTBOX_VERSION),
        )
        if seq_floor is not None:
            conn.execute("INSERT INTO meta VALUES ('seq_floor', ?)", (str(seq_floor),))
        conn.executemany("INSERT INTO site_seq VALUES (?, ?)", next_seq.items())
        conn.execute("COMMIT")
    finally:
        conn.close()
