"""The outbox's SQLite schema (one place, read by the outbox at open)."""

from __future__ import annotations

OUTBOX_FORMAT = "bessai-outbox"
OUTBOX_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS site_seq(site_id TEXT PRIMARY KEY, next_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    device_id TEXT,
    kind TEXT NOT NULL,
    ts_us INTEGER NOT NULL,
    payload BLOB NOT NULL,
    UNIQUE(site_id, seq)
);
CREATE INDEX IF NOT EXISTS outbox_kind_id ON outbox(kind, id);
CREATE TABLE IF NOT EXISTS totals(
    one INTEGER PRIMARY KEY CHECK (one = 1), nrows INTEGER NOT NULL, nbytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO totals VALUES (1, 0, 0);
CREATE TRIGGER IF NOT EXISTS outbox_ins AFTER INSERT ON outbox BEGIN
    UPDATE totals SET nrows = nrows + 1, nbytes = nbytes + length(NEW.payload) WHERE one = 1;
END;
CREATE TRIGGER IF NOT EXISTS outbox_del AFTER DELETE ON outbox BEGIN
    UPDATE totals SET nrows = nrows - 1, nbytes = nbytes - length(OLD.payload) WHERE one = 1;
END;
CREATE TABLE IF NOT EXISTS drops(
    site_id TEXT NOT NULL, kind TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (site_id, kind)
);
CREATE TABLE IF NOT EXISTS sink_cursor(sink TEXT PRIMARY KEY, acked_id INTEGER NOT NULL);
"""


def split_sql(script: str) -> list[str]:
    """Split the schema into statements; triggers contain ';' inside BEGIN ... END."""
    out: list[str] = []
    buf: list[str] = []
    in_trigger = False
    for line in script.strip().splitlines():
        buf.append(line)
        stripped = line.strip().upper()
        if stripped.startswith("CREATE TRIGGER"):
            in_trigger = True
        if (in_trigger and stripped == "END;") or (not in_trigger and stripped.endswith(";")):
            out.append("\n".join(buf).rstrip().rstrip(";"))
            buf = []
            in_trigger = False
    return out
