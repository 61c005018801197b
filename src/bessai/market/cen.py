"""Reader of CEN's price files: the "costo marginal real / en línea" TSV download and the
``costoMarBar`` CSV (formats in :mod:`bessai.market.prices`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bessai.errors import DataError
from bessai.market.regular import DEFAULT_MAX_GAP_H, RawPrices, regularise
from bessai.market.series import LoadIssue, PriceSeries
from bessai.market.table import Table

SANTIAGO = "America/Santiago"

CEN_COLUMNS = {
    # column: unit
    "costo_en_dolares": "USD/MWh",
    "costo_en_pesos": "CLP/kWh",
    "costo_usd": "USD/MWh",
    "costo_clp": "CLP/kWh",
}


def _optional(table: Table, *names: str) -> int | None:
    return next((table.header.index(n) for n in names if n in table.header), None)


@dataclass(frozen=True, slots=True)
class _Columns:
    """Where each field is; ``stamp``, ``node`` and ``code`` only in some downloads."""

    fecha: int
    hora: int
    price: int
    minute: int | None
    # The CSV's `timestamp` is fecha + hora as a naive clock with no DST: useless for the time
    # axis (hora 25 and the next day's hora 1 collide) but a cheap check that rows are intact.
    stamp: int | None
    node: int | None
    code: int | None

    @classmethod
    def of(cls, table: Table, column: str) -> _Columns:
        c_fecha, c_hora, c_price = (table.column(n) for n in ("fecha", "hora", column))
        return cls(
            c_fecha,
            c_hora,
            c_price,
            _optional(table, "minuto"),
            _optional(table, "timestamp"),
            _optional(table, "nombre", "barra"),
            _optional(table, "barra_mnemotecnico"),
        )


class _NodeFilter:
    """A CEN download can hold many buses. ``node`` picks one (by name or mnemonic); without
    it a second bus is an error, not a flood of "duplicate row" messages."""

    def __init__(self, table: Table, cols: _Columns, node: str | None) -> None:
        self.table = table
        self.cols = cols
        self.wanted = node
        self.seen: dict[str, int] = {}
        self.name: str | None = None

    def keep(self, line: int, row: list[str]) -> bool:
        c_node = self.cols.node
        if c_node is None:
            return True
        name = row[c_node].strip()
        self.seen.setdefault(name, line)
        if self.wanted is not None:
            code = self.cols.code
            if self.wanted != name and (code is None or self.wanted != row[code].strip()):
                return False
        elif self.name is not None and name != self.name:
            raise self.table.error(
                line, c_node, f"a second node {name!r} after {self.name!r}; choose one with node="
            )
        self.name = name
        return True

    def check_found(self, path: Path) -> None:
        if self.wanted is not None and self.name is None:
            known = ", ".join(list(self.seen)[:10]) or "none"
            raise DataError(f"{path}: no rows for node {self.wanted!r}; nodes in the file: {known}")


def load_cen(
    path: Path,
    kind: str,
    *,
    delimiter: str,
    column: str | None,
    node: str | None,
    max_gap_h: float = DEFAULT_MAX_GAP_H,
) -> PriceSeries:
    """Read a CEN TSV (``kind`` ``cen-tsv``, decimal comma) or CSV (``cen-csv``)."""
    table = Table(path, delimiter)
    if column is None:
        column = "costo_en_dolares" if "costo_en_dolares" in table.header else "costo_usd"
    if column not in CEN_COLUMNS:
        raise DataError(
            f"{path}:1: {column!r} is not a CEN price column; use one of "
            + ", ".join(c for c in CEN_COLUMNS if c in table.header)
        )
    cols = _Columns.of(table, column)
    step = timedelta(minutes=15) if cols.minute is not None else timedelta(hours=1)
    nodes = _NodeFilter(table, cols, node)
    raw = RawPrices(path, kind, CEN_COLUMNS[column], "", SANTIAGO, step)
    for line, row in table.rows():
        raw.rows += 1
        if not nodes.keep(line, row):
            continue
        _read_row(table, cols, line, row, raw, decimal_comma=kind == "cen-tsv")
    nodes.check_found(path)
    raw.node = nodes.name or node or path.stem
    return regularise(raw, max_gap_h)


def _read_row(
    table: Table, cols: _Columns, line: int, row: list[str], raw: RawPrices, *, decimal_comma: bool
) -> None:
    """Check one row and add its price (unless it is the hour daylight saving skips)."""
    try:
        day = date.fromisoformat(row[cols.fecha].strip())
    except ValueError:
        raise table.error(
            line, cols.fecha, f"{row[cols.fecha]!r} is not a date YYYY-MM-DD"
        ) from None
    try:
        hour = int(row[cols.hora])
    except ValueError:
        hour = 0
    if not 1 <= hour <= 25:
        raise table.error(line, cols.hora, f"hora {row[cols.hora]!r} is not 1..25")
    minute = 0
    if cols.minute is not None:
        try:
            minute = int(row[cols.minute])
        except ValueError:
            minute = -1
        if minute not in (0, 15, 30, 45):
            raise table.error(line, cols.minute, f"minuto {row[cols.minute]!r} is not 0/15/30/45")
    value = table.number(line, cols.price, row[cols.price], decimal_comma=decimal_comma)
    if cols.stamp is not None:
        expected = datetime(day.year, day.month, day.day) + timedelta(hours=hour, minutes=minute)
        _check_stamp(table, line, cols.stamp, row[cols.stamp], expected)
    try:
        start, issue = cen_start(day, hour, minute, ZoneInfo(SANTIAGO), line)
    except ValueError as exc:
        raise table.error(line, cols.hora, str(exc)) from None
    if issue is not None:
        raw.issues.append(issue)
    if start is not None:
        raw.add(start, value, line)


def _check_stamp(table: Table, line: int, col: int, text: str, expected: datetime) -> None:
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError:
        stamp = None
    if stamp != expected:
        raise table.error(
            line,
            col,
            f"timestamp {text!r} is not fecha + hora ({expected:%Y-%m-%d %H:%M:%S})",
        )


def cen_start(
    day: date, hour: int, minute: int, tz: ZoneInfo, line: int
) -> tuple[datetime | None, LoadIssue | None]:
    """UTC start of CEN (fecha, hora): hora h is the wall-clock hour (h-1):00..h:00. Chile
    changes clocks at midnight, so on the day DST ends 23:00..24:00 happens twice: hora 24 is
    the first (summer time), hora 25 the second. On the day DST starts 00:00..01:00 does not
    exist; CEN still writes a row for it (with price 0 in 2019-2023), which is dropped.

    Raises ValueError for hora 25 on a day without a repeated hour."""
    if hour == 25:
        wall = datetime(day.year, day.month, day.day, 23, minute, tzinfo=tz, fold=1)
        if wall.utcoffset() == wall.replace(fold=0).utcoffset():
            raise ValueError(f"hora 25 on {day}, which is not a day when daylight saving ends")
        utc = wall.astimezone(UTC)
        return utc, LoadIssue(
            "dst-repeated-hour",
            f"{day} hora 25: the repeated 23:00 hour when daylight saving ends",
            line,
            utc,
        )
    naive = datetime(day.year, day.month, day.day) + timedelta(hours=hour - 1, minutes=minute)
    wall = naive.replace(tzinfo=tz)
    utc = wall.astimezone(UTC)
    # A wall time inside the spring-forward gap does not survive a round trip through UTC.
    if utc.astimezone(tz).replace(tzinfo=None) != naive:
        return None, LoadIssue(
            "dst-missing-hour",
            f"{day} hora {hour}: wall-clock hour does not exist (daylight saving starts); "
            "row dropped",
            line,
        )
    return utc, None
