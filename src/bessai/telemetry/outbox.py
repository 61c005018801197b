"""The durable outbox: the gateway's durability boundary for telemetry.

SQLite in WAL mode with `synchronous=FULL`: a cycle's envelopes are committed in one
transaction together with the per-site `seq` counter, so after a crash or power loss the
database holds whole cycles only and `seq` continues without a gap or a reuse.

Each sink has a persistent cursor (the highest row id it acknowledged). A row is deleted only
when every configured sink's cursor has passed it. Row ids come from AUTOINCREMENT so they are
never reused, even after the table empties, which keeps cursors meaningful forever.

Two connections: one for the producer (the cycle's insert) and one for the forwarder, each
behind its own lock so the forwarder can run its queries in a worker thread while the cycle
inserts. SQLite serialises the writes; transactions on both sides are short.

Capacity policy (explicit, counted): when the cap (`max_rows` / `max_bytes` of payload) is
exceeded, or SQLite reports the disk full, the oldest *telemetry* rows are deleted first and
each one is counted in `drops`. Alarms and commands are never dropped: when nothing droppable
is left and the disk is still full they are held in memory and stored first on the next cycle.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import structlog

from bessai import sqlitefile
from bessai.errors import OutboxError
from bessai.sqlitefile import DamagedFileError
from bessai.telemetry.envelope import Envelope, Record, now_utc
from bessai.telemetry.outbox_repair import (
    OutboxRepair,
    build_replacement,
    salvage_next_seq,
    seq_floor_now,
)
from bessai.telemetry.outbox_schema import OUTBOX_FORMAT, OUTBOX_VERSION, SCHEMA, split_sql
from bessai.telemetry.outbox_types import (
    STORAGE_STATES,
    AppendResult,
    OutboxRow,
    OutboxStats,
    StorageState,
    wall_clock_us,
)

log = structlog.get_logger(__name__)

__all__ = [
    "HELD_MAX",
    "STORAGE_STATES",
    "AppendResult",
    "Outbox",
    "OutboxRow",
    "OutboxStats",
    "StorageState",
]

# Records held in memory while the outbox cannot store them (about 14 h of one site at 5 s).
HELD_MAX = 10_000


def _is_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


class Outbox:
    """The SQLite outbox. Thread-safe; `append` is the cycle's only telemetry call."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_rows: int | None = None,
        max_bytes: int | None = None,
        boot_id: str | None = None,
        max_db_pages: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.boot_id = boot_id or uuid.uuid4().hex
        self._max_db_pages = max_db_pages
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()
        self._held: list[Record] = []
        self._unpersisted_drops: dict[tuple[str, str], int] = {}
        self._sinks: tuple[str, ...] = ()
        self._lock_file = self._acquire_lock()
        self.repair: OutboxRepair | None = None
        try:
            try:
                self._open_db()
            except DamagedFileError as exc:
                self._replace_damaged(exc)
        except sqlite3.DatabaseError as exc:
            self._lock_file.close()
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc
        except BaseException:
            self._lock_file.close()
            raise
        self._state: StorageState = "ok"
        self._storage_error: str | None = None
        self._last_drop_us: int | None = None
        self.stats = OutboxStats()
        with self._wlock:
            self._refresh_stats(self._w)

    # -- setup ---------------------------------------------------------------------------------

    def _acquire_lock(self) -> IO[str]:
        """One process per outbox: a second gateway on the same file would forward every
        row twice and race the cursors. The OS drops the lock when the process dies."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path.with_name(self.path.name + ".lock"), "a+")  # noqa: SIM115
        except OSError as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise OutboxError(
                f"outbox {self.path} is in use by another process (pid {holder}); "
                "one gateway per outbox"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        return fh

    def _open_db(self) -> None:
        """Both connections, the schema, and a check that the file is sound."""
        if self.path.exists() and self.path.stat().st_size > 0:
            sqlitefile.probe(self.path)
        opened: list[sqlite3.Connection] = []
        try:
            self._w = self._connect()
            opened.append(self._w)
            self._init_schema()
            self._r = self._connect()
            opened.append(self._r)
            floor = self._w.execute("SELECT value FROM meta WHERE key = 'seq_floor'").fetchone()
        except BaseException as exc:
            for conn in opened:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            if isinstance(exc, sqlite3.DatabaseError) and sqlitefile.is_damage(exc):
                raise DamagedFileError(self.path, str(exc)) from exc
            raise
        self._seq_floor = int(floor[0]) if floor else 0

    def _replace_damaged(self, damage: DamagedFileError) -> None:
        """Keep the damaged file aside, start a new outbox, carry `seq` over (outbox_repair)."""
        next_seq = salvage_next_seq(self.path)
        floor = seq_floor_now() if next_seq is None else None
        moved_to = sqlitefile.replace_damaged(
            self.path, lambda tmp: build_replacement(tmp, next_seq or {}, floor)
        )
        self._open_db()
        self.repair = OutboxRepair(
            damaged=self.path,
            moved_to=moved_to,
            reason=damage.reason,
            next_seq=next_seq or {},
            seq_floor=floor,
            at_us=wall_clock_us(),
        )
        log.critical(
            "outbox damaged: moved aside, new outbox started", detail=self.repair.describe()
        )

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=10.0
        )
        conn.execute("PRAGMA busy_timeout = 10000")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxError(f"outbox {self.path}: cannot enable WAL (journal_mode={mode})")
        # FULL: a committed cycle survives power loss, not only a process crash.
        conn.execute("PRAGMA synchronous = FULL")
        # After a backlog drains, shrink the WAL back instead of keeping its peak size.
        conn.execute("PRAGMA journal_size_limit = 67108864")
        if self._max_db_pages is not None:
            conn.execute(f"PRAGMA max_page_count = {int(self._max_db_pages)}")
        return conn

    def _init_schema(self) -> None:
        tables = {
            r[0] for r in self._w.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if tables and "meta" not in tables:
            raise OutboxError(
                f"{self.path} is an SQLite database but not a bessai outbox "
                f"(tables: {', '.join(sorted(tables))})"
            )
        if "meta" in tables:
            meta = dict(self._w.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("format") != OUTBOX_FORMAT:
                raise OutboxError(
                    f"{self.path} is not a bessai outbox (format={meta.get('format')})"
                )
            if meta.get("version") != OUTBOX_VERSION:
                raise OutboxError(
                    f"outbox {self.path} has version {meta.get('version')}, "
                    f"this gateway reads version {OUTBOX_VERSION}"
                )
        self._w.execute("BEGIN IMMEDIATE")
        try:
            for stmt in split_sql(SCHEMA):
                self._w.execute(stmt)
            self._w.execute(
                "INSERT OR IGNORE INTO meta VALUES ('format', ?), ('version', ?)",
                (OUTBOX_FORMAT, OUTBOX_VERSION),
            )
            self._w.execute("COMMIT")
        except BaseException:
            if self._w.in_transaction:
                self._w.execute("ROLLBACK")
            raise

    def set_max_db_pages(self, pages: int | None) -> None:
        """Change the hard ceiling of the database file (SQLite `max_page_count`).

        Production uses it as a disk budget; tests use it to simulate a full disk."""
        self._max_db_pages = pages
        value = pages if pages is not None else 4294967294
        with self._wlock:
            self._w.execute(f"PRAGMA max_page_count = {int(value)}")
        with self._rlock:
            self._r.execute(f"PRAGMA max_page_count = {int(value)}")

    def close(self) -> None:
        with self._wlock, self._rlock:
            self._r.close()
            self._w.close()
            self._lock_file.close()  # releases the flock

    # -- producer side (the cycle) -------------------------------------------------------------

    def append(self, records: Sequence[Record]) -> AppendResult:
        """Store one cycle's records in one transaction and give each its `seq`.

        Never raises for a storage problem, so the cycle keeps controlling the battery:
        - cap exceeded: the oldest telemetry rows are dropped (counted);
        - disk full (SQLITE_FULL): the same, and when nothing droppable is left this cycle's
          telemetry is dropped (counted) while its alarms/commands wait in memory;
        - any other SQLite operational error (I/O error, lock timeout): the whole cycle waits
          in memory, bounded by `HELD_MAX` records (beyond it the oldest telemetry goes,
          counted), and is stored first, in order, by the next append that succeeds.
        The outcome is in the result and in `stats`."""
        with self._wlock:
            batch = [*self._held, *records]
            self._held = []
            dropped = 0
            state: StorageState = "ok"
            error: str | None = None
            envelopes: tuple[Envelope, ...] = ()
            stored = False
            for attempt in range(8):
                try:
                    envelopes, capped = self._append_tx(batch)
                    stored = True
                    dropped += capped
                    if capped:
                        state = "capped"
                    break
                except sqlite3.OperationalError as exc:
                    error = f"{exc} (outbox {self.path})"
                    if not _is_full(exc):
                        state = "error"
                        break
                    state = "full"
                    try:
                        freed = self._drop_oldest_telemetry_tx(max(2 * len(batch), 64) << attempt)
                    except sqlite3.OperationalError as drop_exc:
                        state, error = "error", f"{drop_exc} (outbox {self.path})"
                        break
                    dropped += freed
                    if freed == 0:
                        break
            if not stored:
                dropped += self._hold(batch, keep_telemetry=state == "error")
                log.error(
                    "outbox cannot store: holding records in memory",
                    outbox=str(self.path),
                    reason=state,
                    held=len(self._held),
                    dropped=dropped,
                    error=error,
                )
            elif state != "ok":
                log.warning(
                    "outbox dropped oldest telemetry to make room",
                    outbox=str(self.path),
                    dropped=dropped,
                    reason=state,
                )
            self._state = state
            self._storage_error = error
            if dropped:
                self._last_drop_us = wall_clock_us()
            self._refresh_stats(self._w)
            return AppendResult(envelopes, dropped, len(self._held), state)

    def _hold(self, batch: Sequence[Record], *, keep_telemetry: bool) -> int:
        """Keep what could not be stored in memory; returns the telemetry dropped instead.

        A full disk with nothing droppable will not free itself, so telemetry is dropped
        then; a transient error keeps it too. Alarms and commands are always kept."""
        dropped: list[Record] = []
        for rec in batch:
            if rec.kind == "telemetry" and not keep_telemetry:
                dropped.append(rec)
            else:
                self._held.append(rec)
        excess = len(self._held) - HELD_MAX
        if excess > 0:
            kept: list[Record] = []
            for rec in self._held:
                if excess > 0 and rec.kind == "telemetry":
                    dropped.append(rec)
                    excess -= 1
                else:
                    kept.append(rec)
            self._held = kept
        for rec in dropped:
            key = (rec.site_id, rec.kind)
            self._unpersisted_drops[key] = self._unpersisted_drops.get(key, 0) + 1
        return len(dropped)

    def _append_tx(self, batch: Sequence[Record]) -> tuple[tuple[Envelope, ...], int]:
        conn = self._w
        now = now_utc()
        conn.execute("BEGIN IMMEDIATE")
        try:
            next_seq: dict[str, int] = {}
            out: list[Envelope] = []
            for rec in batch:
                seq = next_seq.get(rec.site_id)
                if seq is None:
                    row = conn.execute(
                        "SELECT next_seq FROM site_seq WHERE site_id = ?", (rec.site_id,)
                    ).fetchone()
                    seq = row[0] if row else self._seq_floor
                env = Envelope(
                    site_id=rec.site_id,
                    seq=seq,
                    boot_id=self.boot_id,
                    ts=(rec.ts or now).astimezone(UTC),
                    kind=rec.kind,
                    values=rec.values,
                    device_id=rec.device_id,
                )
                conn.execute(
                    "INSERT INTO outbox(site_id, seq, device_id, kind, ts_us, payload) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (env.site_id, seq, env.device_id, env.kind, _to_us(env.ts), env.to_json()),
                )
                next_seq[rec.site_id] = seq + 1
                out.append(env)
            conn.executemany(
                "INSERT INTO site_seq(site_id, next_seq) VALUES (?, ?) "
                "ON CONFLICT(site_id) DO UPDATE SET next_seq = excluded.next_seq",
                list(next_seq.items()),
            )
            if self._unpersisted_drops:
                self._add_drops(conn, self._unpersisted_drops)
            capped = self._enforce_cap(conn)
            conn.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back (FULL, IOERR); a second ROLLBACK would
            # raise and hide the original error.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._unpersisted_drops = {}
        return tuple(out), capped

    def _enforce_cap(self, conn: sqlite3.Connection) -> int:
        nrows, nbytes = conn.execute("SELECT nrows, nbytes FROM totals").fetchone()
        excess_rows = nrows - self.max_rows if self.max_rows is not None else 0
        excess_bytes = nbytes - self.max_bytes if self.max_bytes is not None else 0
        if excess_rows <= 0 and excess_bytes <= 0:
            return 0
        victims: list[tuple[int, str]] = []
        freed_bytes = 0
        cur = conn.execute(
            "SELECT id, site_id, length(payload) FROM outbox WHERE kind = 'telemetry' ORDER BY id"
        )
        for row_id, site_id, size in cur:
            if len(victims) >= excess_rows and freed_bytes >= excess_bytes:
                break
            victims.append((row_id, site_id))
            freed_bytes += size
        cur.close()
        return self._delete_victims(conn, victims)

    def _delete_victims(self, conn: sqlite3.Connection, victims: Iterable[tuple[int, str]]) -> int:
        counts: dict[tuple[str, str], int] = {}
        ids: list[tuple[int]] = []
        for row_id, site_id in victims:
            ids.append((row_id,))
            counts[(site_id, "telemetry")] = counts.get((site_id, "telemetry"), 0) + 1
        conn.executemany("DELETE FROM outbox WHERE id = ?", ids)
        self._add_drops(conn, counts)
        return len(ids)

    @staticmethod
    def _add_drops(conn: sqlite3.Connection, counts: dict[tuple[str, str], int]) -> None:
        conn.executemany(
            "INSERT INTO drops(site_id, kind, count) VALUES (?, ?, ?) "
            "ON CONFLICT(site_id, kind) DO UPDATE SET count = count + excluded.count",
            [(s, k, n) for (s, k), n in counts.items()],
        )

    def _drop_oldest_telemetry_tx(self, n: int) -> int:
        conn = self._w
        conn.execute("BEGIN IMMEDIATE")
        try:
            victims = conn.execute(
                "SELECT id, site_id FROM outbox WHERE kind = 'telemetry' ORDER BY id LIMIT ?",
                (n,),
            ).fetchall()
            dropped = self._delete_victims(conn, victims)
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if _is_full(exc):
                return 0
            raise
        return dropped

    # -- forwarder side ------------------------------------------------------------------------

    def set_sinks(self, names: Sequence[str]) -> None:
        """Declare the configured sinks; a new sink starts with every stored row."""
        with self._rlock:
            self._sinks = tuple(names)
            self._r.executemany(
                "INSERT OR IGNORE INTO sink_cursor(sink, acked_id) VALUES (?, 0)",
                [(n,) for n in names],
            )

    def cursor(self, sink: str) -> int:
        with self._rlock:
            row = self._r.execute(
                "SELECT acked_id FROM sink_cursor WHERE sink = ?", (sink,)
            ).fetchone()
            return int(row[0]) if row else 0

    def read_after(self, after_id: int, limit: int) -> list[OutboxRow]:
        with self._rlock:
            rows = self._r.execute(
                "SELECT id, site_id, seq, device_id, kind, ts_us, payload FROM outbox "
                "WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [OutboxRow(*r) for r in rows]

    def pending_for(self, sink: str) -> tuple[int, int | None]:
        """Rows waiting for `sink` and the source time of its oldest one."""
        with self._rlock:
            row = self._r.execute(
                "SELECT COUNT(*), MIN(ts_us) FROM outbox WHERE id > "
                "(SELECT acked_id FROM sink_cursor WHERE sink = ?)",
                (sink,),
            ).fetchone()
        return int(row[0]), row[1]

    def ack(self, sink: str, acked_id: int) -> int:
        """Record that `sink` has everything up to `acked_id`; delete rows all sinks have.

        Returns the number of rows deleted."""
        with self._rlock:
            conn = self._r
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "UPDATE sink_cursor SET acked_id = MAX(acked_id, ?) WHERE sink = ?",
                    (acked_id, sink),
                )
                deleted = 0
                if self._sinks:
                    marks = ",".join("?" * len(self._sinks))
                    floor = conn.execute(
                        f"SELECT MIN(acked_id) FROM sink_cursor WHERE sink IN ({marks})",
                        self._sinks,
                    ).fetchone()[0]
                    deleted = conn.execute("DELETE FROM outbox WHERE id <= ?", (floor,)).rowcount
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._refresh_stats(conn)
        return deleted

    # -- inspection ----------------------------------------------------------------------------

    def _refresh_stats(self, conn: sqlite3.Connection) -> None:
        try:
            self._read_stats(conn)
        except sqlite3.Error:
            # The database cannot be read right now: keep the last numbers, update the rest.
            self.stats = replace(
                self.stats,
                storage_state=self._state,
                storage_error=self._storage_error,
                held_in_memory=len(self._held),
                last_drop_us=self._last_drop_us,
                updated_us=wall_clock_us(),
            )

    def _read_stats(self, conn: sqlite3.Connection) -> None:
        nrows, nbytes = conn.execute("SELECT nrows, nbytes FROM totals").fetchone()
        oldest = conn.execute(
            "SELECT ts_us FROM outbox WHERE id = (SELECT MIN(id) FROM outbox)"
        ).fetchone()
        drops = {
            (s, k): int(n) for s, k, n in conn.execute("SELECT site_id, kind, count FROM drops")
        }
        for key, n in self._unpersisted_drops.items():
            drops[key] = drops.get(key, 0) + n
        self.stats = OutboxStats(
            rows=int(nrows),
            bytes=int(nbytes),
            oldest_ts_us=oldest[0] if oldest else None,
            dropped=drops,
            storage_state=self._state,
            storage_error=self._storage_error,
            held_in_memory=len(self._held),
            last_drop_us=self._last_drop_us,
            updated_us=wall_clock_us(),
            repaired=self.repair.describe() if self.repair else None,
            repaired_us=self.repair.at_us if self.repair else None,
        )

    def next_seq(self, site_id: str) -> int:
        with self._rlock:
            row = self._r.execute(
                "SELECT next_seq FROM site_seq WHERE site_id = ?", (site_id,)
            ).fetchone()
        return int(row[0]) if row else self._seq_floor

    def integrity_check(self) -> str:
        with self._rlock:
            return str(self._r.execute("PRAGMA integrity_check").fetchone()[0])

    def all_rows(self) -> list[OutboxRow]:
        """Every stored row in order (inspection and tests; not for the hot path)."""
        return self.read_after(0, 2**62)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _to_us(ts: datetime) -> int:
    # Integer arithmetic: a float timestamp would round microseconds.
    return (ts - _EPOCH) // timedelta(microseconds=1)
