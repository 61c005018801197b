"""Parquet lake sink: `<path>/site=<site_id>/date=<YYYY-MM-DD>/part-<first>-<last>.parquet`.

A file is written to a temporary name, fsynced and renamed, so a reader never sees half a
file; the rows leave the outbox only after the rename. The file name is derived from the
seq range, so re-writing the same batch after a crash replaces the file instead of adding a
copy. A different batch split after a restart can still overlap an existing file, which is
why `bessai lake query` offers the de-duplicated view `telemetry` next to `telemetry_raw`.

Each value becomes a column named as the value (units in names); the envelope fields are
columns too. Files with different value sets are read together with DuckDB's
`union_by_name`.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import structlog

from bessai.errors import SinkError
from bessai.telemetry.config import LakeSinkConfig
from bessai.telemetry.outbox import OutboxRow
from bessai.telemetry.sinks.base import Sink

log = structlog.get_logger(__name__)

_ENVELOPE_COLUMNS = pa.schema(
    [
        ("site_id", pa.string()),
        ("device_id", pa.string()),
        ("boot_id", pa.string()),
        ("seq", pa.int64()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("historical", pa.bool_()),
        ("kind", pa.string()),
        ("schema_version", pa.int16()),
    ]
)


def _value_array(values: list[Any]) -> pa.Array:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.array(values, pa.bool_())
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.array(values, pa.int64())
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    # Mixed or textual: keep every value, as text, rather than fail the batch.
    return pa.array(
        [None if v is None else (json.dumps(v) if isinstance(v, bool) else str(v)) for v in values],
        pa.string(),
    )


def envelopes_to_table(docs: Sequence[dict[str, Any]]) -> pa.Table:
    """One Arrow table from parsed envelopes: envelope columns, then one column per value."""
    columns: dict[str, list[Any]] = {f.name: [] for f in _ENVELOPE_COLUMNS}
    value_names: list[str] = []
    seen: set[str] = set()
    for doc in docs:
        for name in doc["values"]:
            if name not in seen:
                seen.add(name)
                value_names.append(name)
    for doc in docs:
        for f in _ENVELOPE_COLUMNS:
            v = doc[f.name]
            columns[f.name].append(
                datetime.fromisoformat(v.replace("Z", "+00:00")) if f.name == "ts" else v
            )
    arrays = [pa.array(columns[f.name], f.type) for f in _ENVELOPE_COLUMNS]
    names = [f.name for f in _ENVELOPE_COLUMNS]
    for name in value_names:
        arrays.append(_value_array([doc["values"].get(name) for doc in docs]))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LakeSink(Sink):
    """Writes Parquet files partitioned by site and UTC date."""

    def __init__(self, config: LakeSinkConfig) -> None:
        super().__init__(config.name, "lake", str(config.path))
        self.config = config
        self.batch_max_rows = config.max_rows_per_file
        self.batch_max_delay_s = config.flush_interval_s
        self.backoff_initial_s = config.backoff_initial_s
        self.backoff_max_s = config.backoff_max_s
        self.files_written = 0

    async def publish(self, rows: Sequence[OutboxRow], payloads: Sequence[bytes]) -> None:
        try:
            written = await asyncio.to_thread(self._write, rows, payloads)
        except (OSError, pa.ArrowException, ValueError) as exc:
            self.status.state = "disconnected"
            raise SinkError(
                f"cannot write Parquet under {self.config.path}: {exc}", sink=self.name
            ) from exc
        self.status.state = "connected"
        self.files_written += written

    def _write(self, rows: Sequence[OutboxRow], payloads: Sequence[bytes]) -> int:
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for row, payload in zip(rows, payloads, strict=True):
            day = datetime.fromtimestamp(row.ts_us / 1e6, UTC).date().isoformat()
            groups[(row.site_id, day)].append(json.loads(payload))
        for (site_id, day), docs in groups.items():
            directory = self.config.path / f"site={site_id}" / f"date={day}"
            directory.mkdir(parents=True, exist_ok=True)
            seqs = [d["seq"] for d in docs]
            final = directory / f"part-{min(seqs):020d}-{max(seqs):020d}.parquet"
            tmp = final.with_suffix(".parquet.tmp")
            table = envelopes_to_table(docs)
            with tmp.open("wb") as fh:
                pq.write_table(table, fh, compression="zstd")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
            _fsync_dir(directory)
        return len(groups)

    async def close(self) -> None:
        self.status.state = "idle"
