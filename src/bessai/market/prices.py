"""One loader for every price file the product reads.

Formats (auto-detected from the header):

- ``cen-tsv``: the CEN "costo marginal real / en línea" download: tab-separated, decimal comma,
  ``fecha`` + ``hora`` 1..24 (25 on the day daylight saving ends) in America/Santiago wall-clock
  time, ``hora`` naming the hour that *ends* at that o'clock. The 15-minute online download adds a
  ``minuto`` column (0, 15, 30, 45: the start of the quarter within the hour).
- ``cen-csv``: the CSV of CEN's ``costoMarBar`` resource (``timestamp,fecha,hora,costo_usd,
  costo_clp,barra``), ``costo_clp`` being CLP/kWh (not CLP/MWh as its origin claims).
- ``smard``: the SMARD (EPEX day-ahead) export: ``;``-separated, BOM, ``-`` for missing, local
  German time at the *start* of the hour, EUR/MWh.
- ``generic``: ``timestamp,price`` with ISO-8601 timestamps carrying an offset (or ``Z``), each
  the *start* of its step.

The result is a regular, UTC-indexed :class:`PriceSeries` whose index labels the *start* of each
step. Everything the loader had to repair (a gap filled, a repeated or non-existent DST hour, a
zone change) is listed in :attr:`PriceSeries.report`, never silently done.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd

from bessai.errors import DataError

Format = Literal["auto", "cen-tsv", "cen-csv", "smard", "generic"]
FORMATS: tuple[str, ...] = ("auto", "cen-tsv", "cen-csv", "smard", "generic")

SANTIAGO = "America/Santiago"
BERLIN = "Europe/Berlin"

# The German bidding zone was split on 2018-10-01; before it the German price is the joint
# DE-AT-LU zone, from it the DE-LU zone. Selecting "Germany" stitches the two.
SMARD_GERMANY = "Germany"
_SMARD_DE_AT_LU = "Germany/Austria/Luxembourg"
_SMARD_DE_LU = "Germany/Luxembourg"
_SMARD_SPLIT = date(2018, 10, 1)

_ENERGY_FACTOR = {"MWh": 1.0, "kWh": 1000.0}  # how many of the unit make one MWh


@dataclass(frozen=True, slots=True)
class LoadIssue:
    """One thing the loader repaired or noticed; ``line`` is 1-based in the file (header = 1)."""

    kind: Literal[
        "gap-filled", "dst-repeated-hour", "dst-missing-hour", "zone-change", "missing-value"
    ]
    message: str
    line: int | None = None
    timestamp: datetime | None = None


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What the loader read and what it had to do to get a regular series."""

    path: str
    format: str
    rows: int
    issues: tuple[LoadIssue, ...] = ()

    def of_kind(self, kind: str) -> tuple[LoadIssue, ...]:
        return tuple(i for i in self.issues if i.kind == kind)

    @property
    def filled(self) -> tuple[datetime, ...]:
        """UTC start of every step whose price was interpolated, not read."""
        return tuple(i.timestamp for i in self.of_kind("gap-filled") if i.timestamp is not None)


@dataclass(frozen=True, slots=True)
class PriceSeries:
    """A regular price series: ``prices`` indexed by the UTC start of each step.

    ``unit`` is ``"<currency>/<MWh|kWh>"`` (``"USD/MWh"``, ``"CLP/kWh"``, ``"EUR/MWh"``);
    ``timezone`` is the market's local zone, used to cut the series into market days.
    """

    prices: pd.Series
    step: timedelta
    unit: str
    node: str
    timezone: str = "UTC"
    report: LoadReport = field(default_factory=lambda: LoadReport("", "", 0))

    def __post_init__(self) -> None:
        index = self.prices.index
        if not isinstance(index, pd.DatetimeIndex) or str(index.tz) != "UTC":
            raise ValueError("PriceSeries needs a UTC DatetimeIndex")
        if len(index) > 1 and not (np.diff(index.as_unit("ns").asi8) == _step_ns(self.step)).all():
            raise ValueError(f"PriceSeries index is not regular with step {self.step}")
        _parse_unit(self.unit)

    def __len__(self) -> int:
        return len(self.prices)

    @property
    def index(self) -> pd.DatetimeIndex:
        index = self.prices.index
        assert isinstance(index, pd.DatetimeIndex)
        return index

    @property
    def values(self) -> npt.NDArray[np.float64]:
        return self.prices.to_numpy(dtype=np.float64, copy=True)

    @property
    def currency(self) -> str:
        return _parse_unit(self.unit)[0]

    @property
    def step_h(self) -> float:
        return self.step.total_seconds() / 3600.0

    @property
    def start(self) -> datetime:
        return self.index[0].to_pydatetime()

    @property
    def end(self) -> datetime:
        """The UTC end of the last step."""
        return self.index[-1].to_pydatetime() + self.step

    def between(self, start: datetime | None = None, end: datetime | None = None) -> PriceSeries:
        """The steps starting in ``[start, end)``."""
        index = self.index
        mask = np.ones(len(index), dtype=bool)
        if start is not None:
            mask &= index >= pd.Timestamp(start)
        if end is not None:
            mask &= index < pd.Timestamp(end)
        return PriceSeries(
            self.prices[mask], self.step, self.unit, self.node, self.timezone, self.report
        )

    def to_unit(self, unit: str, *, clp_per_usd: float | None = None) -> PriceSeries:
        """The same series in another unit. Changing currency needs ``clp_per_usd`` and is only
        defined between CLP and USD (the pair CEN publishes)."""
        factor = conversion_factor(self.unit, unit, clp_per_usd=clp_per_usd)
        return PriceSeries(
            self.prices * factor, self.step, unit, self.node, self.timezone, self.report
        )

    def resample(self, step: timedelta) -> PriceSeries:
        """Upsample to a step that divides the current one, each price held over its sub-steps
        (a 15-minute series of an hourly market pays the hourly price in every quarter)."""
        ratio = self.step / step
        if ratio < 1 or ratio != int(ratio):
            raise ValueError(f"can only upsample {self.step} to a step that divides it")
        n = int(ratio)
        values = np.repeat(self.prices.to_numpy(dtype=np.float64), n)
        index = pd.date_range(self.index[0], periods=len(values), freq=pd.Timedelta(step))
        return PriceSeries(
            pd.Series(values, index=index), step, self.unit, self.node, self.timezone, self.report
        )


def _step_ns(step: timedelta) -> int:
    return int(step.total_seconds() * 1e9)


def _parse_unit(unit: str) -> tuple[str, str]:
    currency, sep, energy = unit.partition("/")
    if not sep or energy not in _ENERGY_FACTOR or not currency.isalpha():
        raise ValueError(f"price unit {unit!r} is not '<currency>/MWh' or '<currency>/kWh'")
    return currency.upper(), energy


def conversion_factor(src: str, dst: str, *, clp_per_usd: float | None = None) -> float:
    """The factor that turns a price in ``src`` into ``dst`` (e.g. CLP/kWh -> USD/MWh is
    ``1000 / clp_per_usd``)."""
    src_cur, src_energy = _parse_unit(src)
    dst_cur, dst_energy = _parse_unit(dst)
    # price per MWh = price per kWh * 1000
    factor = _ENERGY_FACTOR[src_energy] / _ENERGY_FACTOR[dst_energy]
    if src_cur == dst_cur:
        return factor
    if {src_cur, dst_cur} != {"CLP", "USD"}:
        raise ValueError(f"no exchange rate known for {src_cur} -> {dst_cur}")
    if clp_per_usd is None or not clp_per_usd > 0:
        raise ValueError(f"converting {src} to {dst} needs a positive clp_per_usd rate")
    return factor / clp_per_usd if src_cur == "CLP" else factor * clp_per_usd


# --------------------------------------------------------------------------- reading


class _Table:
    """Rows of a delimited file with the position of every field, for precise errors."""

    def __init__(self, path: Path, delimiter: str) -> None:
        self.path = path
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read price file: {exc}") from exc
        lines = text.splitlines()
        if not lines:
            raise DataError(f"{path}:1: price file is empty")
        self.delimiter = delimiter
        self.header = next(csv.reader([lines[0]], delimiter=delimiter))
        self._lines = lines

    def column(self, name: str) -> int:
        try:
            return self.header.index(name)
        except ValueError:
            raise DataError(
                f"{self.path}:1: no column {name!r}; columns are {', '.join(self.header)}"
            ) from None

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        reader = csv.reader(self._lines[1:], delimiter=self.delimiter)
        for offset, row in enumerate(reader):
            line = offset + 2
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(self.header):
                raise DataError(
                    f"{self.path}:{line}: expected {len(self.header)} fields, found {len(row)}"
                )
            yield line, row

    def error(self, line: int, col: int, what: str) -> DataError:
        return DataError(f"{self.path}:{line}:{col + 1}: {what} (column {self.header[col]!r})")

    def number(self, line: int, col: int, text: str, *, decimal_comma: bool = False) -> float:
        raw = text.strip()
        if decimal_comma:
            raw = raw.replace(".", "").replace(",", ".") if "," in raw else raw
        try:
            value = float(raw)
        except ValueError:
            raise self.error(line, col, f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise self.error(line, col, f"{text!r} is not a finite number")
        return value


def detect_format(path: str | Path) -> str:
    """The format of a price file, from its first line."""
    p = Path(path)
    try:
        with p.open(encoding="utf-8-sig") as fh:
            first = fh.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: cannot read price file: {exc}") from exc
    fields_tab = first.split("\t")
    if "fecha" in fields_tab and "hora" in fields_tab:
        return "cen-tsv"
    fields_semi = first.split(";")
    if fields_semi[:2] == ["Date", "Time of day"]:
        return "smard"
    fields_comma = [f.strip() for f in first.split(",")]
    if {"timestamp", "fecha", "hora"} <= set(fields_comma):
        return "cen-csv"
    if len(fields_comma) == 2 and fields_comma[0] == "timestamp":
        return "generic"
    raise DataError(
        f"{p}:1: unknown price file format (header {first[:80]!r}); expected a CEN TSV/CSV, "
        "a SMARD export or 'timestamp,price'"
    )


def load_prices(
    path: str | Path,
    *,
    fmt: Format = "auto",
    column: str | None = None,
    unit: str | None = None,
    node: str | None = None,
) -> PriceSeries:
    """Load a price file into a regular UTC :class:`PriceSeries`.

    ``column`` picks the price column (CEN: ``costo_usd``/``costo_en_dolares`` by default, or
    the CLP/kWh column; SMARD: any zone by name, default ``"Germany"`` stitched across the 2018
    zone change). ``unit`` states the unit of a generic file (default from its header,
    ``price_usd_mwh`` style, else USD/MWh). ``node`` selects the bus of a CEN file holding
    several (by ``nombre``/``barra`` or ``barra_mnemotecnico``); elsewhere it names the
    series. Malformed content raises :class:`DataError` naming
    file, line and column.
    """
    p = Path(path)
    kind = detect_format(p) if fmt == "auto" else fmt
    if kind == "cen-tsv":
        return _load_cen(p, kind, delimiter="\t", column=column, node=node)
    if kind == "cen-csv":
        return _load_cen(p, kind, delimiter=",", column=column, node=node)
    if kind == "smard":
        return _load_smard(p, column=column, node=node)
    if kind == "generic":
        return _load_generic(p, unit=unit, node=node)
    raise DataError(f"{p}: unknown price format {fmt!r}; choose one of {', '.join(FORMATS)}")


# --------------------------------------------------------------------------- CEN


_CEN_COLUMNS = {
    # column: unit
    "costo_en_dolares": "USD/MWh",
    "costo_en_pesos": "CLP/kWh",
    "costo_usd": "USD/MWh",
    "costo_clp": "CLP/kWh",
}


def _load_cen(
    path: Path, kind: str, *, delimiter: str, column: str | None, node: str | None
) -> PriceSeries:
    table = _Table(path, delimiter)
    if column is None:
        column = "costo_en_dolares" if "costo_en_dolares" in table.header else "costo_usd"
    if column not in _CEN_COLUMNS:
        raise DataError(
            f"{path}:1: {column!r} is not a CEN price column; use one of "
            + ", ".join(c for c in _CEN_COLUMNS if c in table.header)
        )
    c_fecha, c_hora, c_price = (table.column(n) for n in ("fecha", "hora", column))
    c_minute = table.header.index("minuto") if "minuto" in table.header else None
    # The CSV's `timestamp` is fecha + hora as a naive clock with no DST: useless for the time
    # axis (hora 25 and the next day's hora 1 collide) but a cheap check that rows are intact.
    c_stamp = table.header.index("timestamp") if "timestamp" in table.header else None
    c_node = next((table.header.index(n) for n in ("nombre", "barra") if n in table.header), None)
    decimal_comma = kind == "cen-tsv"
    tz = ZoneInfo(SANTIAGO)
    step = timedelta(minutes=15) if c_minute is not None else timedelta(hours=1)

    starts: list[datetime] = []
    values: list[float] = []
    lines: list[int] = []
    issues: list[LoadIssue] = []
    c_code = (
        table.header.index("barra_mnemotecnico") if "barra_mnemotecnico" in table.header else None
    )
    # A CEN download can hold many buses. `node` picks one (by name or mnemonic); without it
    # a second bus is an error, not a flood of "duplicate row" messages.
    seen_nodes: dict[str, int] = {}
    node_name: str | None = None
    rows = 0
    for line, row in table.rows():
        rows += 1
        if c_node is not None:
            name = row[c_node].strip()
            seen_nodes.setdefault(name, line)
            if node is not None:
                if node != name and (c_code is None or node != row[c_code].strip()):
                    continue
            elif node_name is not None and name != node_name:
                raise table.error(
                    line,
                    c_node,
                    f"a second node {name!r} after {node_name!r}; choose one with node=",
                )
            node_name = name
        try:
            day = date.fromisoformat(row[c_fecha].strip())
        except ValueError:
            raise table.error(line, c_fecha, f"{row[c_fecha]!r} is not a date YYYY-MM-DD") from None
        try:
            hour = int(row[c_hora])
        except ValueError:
            hour = 0
        if not 1 <= hour <= 25:
            raise table.error(line, c_hora, f"hora {row[c_hora]!r} is not 1..25")
        minute = 0
        if c_minute is not None:
            try:
                minute = int(row[c_minute])
            except ValueError:
                minute = -1
            if minute not in (0, 15, 30, 45):
                raise table.error(line, c_minute, f"minuto {row[c_minute]!r} is not 0/15/30/45")
        value = table.number(line, c_price, row[c_price], decimal_comma=decimal_comma)
        if c_stamp is not None:
            expected = datetime(day.year, day.month, day.day) + timedelta(
                hours=hour, minutes=minute
            )
            try:
                stamp = datetime.fromisoformat(row[c_stamp].strip())
            except ValueError:
                stamp = None
            if stamp != expected:
                raise table.error(
                    line,
                    c_stamp,
                    f"timestamp {row[c_stamp]!r} is not fecha + hora "
                    f"({expected:%Y-%m-%d %H:%M:%S})",
                )
        try:
            start, issue = _cen_start(day, hour, minute, tz, line)
        except ValueError as exc:
            raise table.error(line, c_hora, str(exc)) from None
        if issue is not None:
            issues.append(issue)
        if start is None:
            continue
        starts.append(start)
        values.append(value)
        lines.append(line)
    if node is not None and node_name is None:
        known = ", ".join(list(seen_nodes)[:10]) or "none"
        raise DataError(f"{path}: no rows for node {node!r}; nodes in the file: {known}")
    return _regularise(
        path,
        kind,
        rows,
        starts,
        values,
        lines,
        step,
        unit=_CEN_COLUMNS[column],
        node=node_name or node or path.stem,
        timezone=SANTIAGO,
        issues=issues,
    )


def _cen_start(
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


# --------------------------------------------------------------------------- SMARD


def _load_smard(path: Path, *, column: str | None, node: str | None) -> PriceSeries:
    table = _Table(path, ";")
    names = {h.split("[")[0]: i for i, h in enumerate(table.header)}
    zones = [n for n in names if n not in ("Date", "Time of day")]
    wanted = column or SMARD_GERMANY
    issues: list[LoadIssue] = []
    stitch = wanted == SMARD_GERMANY and SMARD_GERMANY not in names
    if stitch:
        c_before, c_after = names.get(_SMARD_DE_AT_LU), names.get(_SMARD_DE_LU)
        if c_before is None or c_after is None:
            raise DataError(f"{path}:1: no German price columns; zones are {', '.join(zones)}")
    else:
        key = wanted.split("[")[0]
        if key not in names or key in ("Date", "Time of day"):
            raise DataError(f"{path}:1: no zone {wanted!r}; zones are {', '.join(zones)}")
        c_before = c_after = names[key]
    currency = "EUR"
    unit_header = table.header[c_after]
    if "[" in unit_header:
        currency = {"€": "EUR"}.get(unit_header.split("[")[1].split("/")[0], currency)

    tz = ZoneInfo(BERLIN)
    starts: list[datetime] = []
    values: list[float] = []
    lines: list[int] = []
    seen_wall: set[datetime] = set()
    missing: list[int] = []
    rows = 0
    for line, row in table.rows():
        rows += 1
        try:
            wall = datetime.strptime(f"{row[0]} {row[1]}", "%b %d, %Y %I:%M %p")
        except ValueError:
            raise table.error(
                line, 0, f"{row[0]!r} {row[1]!r} is not a date like 'Jan 1, 2018' '1:00 PM'"
            ) from None
        # The autumn hour that repeats is written twice; the second one is winter time.
        fold = 1 if wall in seen_wall else 0
        seen_wall.add(wall)
        local = wall.replace(tzinfo=tz, fold=fold)
        if local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wall:
            raise table.error(line, 1, f"{row[1]!r} does not exist on {row[0]} in {BERLIN}")
        col = c_after if wall.date() >= _SMARD_SPLIT else c_before
        text = row[col].strip()
        utc = local.astimezone(UTC)
        if text == "-":
            missing.append(line)
            continue
        starts.append(utc)
        values.append(table.number(line, col, text))
        lines.append(line)
    if missing:
        # Inside the range they become interpolated gaps; before the first and after the last
        # price the series simply starts later or ends earlier.
        issues.append(
            LoadIssue(
                "missing-value",
                f"{len(missing)} rows have '-' in the price column (first at line {missing[0]})",
                line=missing[0],
            )
        )
    if stitch:
        issues.append(
            LoadIssue(
                "zone-change",
                f"German price is {_SMARD_DE_AT_LU} before {_SMARD_SPLIT} and {_SMARD_DE_LU} "
                "from then on",
                timestamp=datetime(2018, 9, 30, 22, tzinfo=UTC),
            )
        )
    return _regularise(
        path,
        "smard",
        rows,
        starts,
        values,
        lines,
        timedelta(hours=1),
        unit=f"{currency}/MWh",
        node=node or (SMARD_GERMANY if stitch else wanted.split("[")[0]),
        timezone=BERLIN,
        issues=issues,
    )


# --------------------------------------------------------------------------- generic


def _load_generic(path: Path, *, unit: str | None, node: str | None) -> PriceSeries:
    table = _Table(path, ",")
    if len(table.header) != 2 or table.header[0].strip() != "timestamp":
        raise DataError(f"{path}:1: expected header 'timestamp,price', found {table.header}")
    price_header = table.header[1].strip()
    if unit is None:
        unit = "USD/MWh"
        parts = price_header.split("_")
        if len(parts) == 3 and parts[0] == "price":
            unit = f"{parts[1].upper()}/{'MWh' if parts[2].lower() == 'mwh' else 'kWh'}"
    try:
        _parse_unit(unit)
    except ValueError as exc:
        raise DataError(f"{path}:1: {exc}") from None
    starts: list[datetime] = []
    values: list[float] = []
    lines: list[int] = []
    rows = 0
    for line, row in table.rows():
        rows += 1
        text = row[0].strip()
        try:
            ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise table.error(line, 0, f"{text!r} is not an ISO-8601 timestamp") from None
        if ts.tzinfo is None:
            raise table.error(
                line, 0, f"{text!r} has no UTC offset; write e.g. '{text}+00:00' or '{text}Z'"
            )
        starts.append(ts.astimezone(UTC))
        values.append(table.number(line, 1, row[1]))
        lines.append(line)
    return _regularise(
        path,
        "generic",
        rows,
        starts,
        values,
        lines,
        None,
        unit=unit,
        node=node or path.stem,
        timezone="UTC",
        issues=[],
    )


# --------------------------------------------------------------------------- common


def _regularise(
    path: Path,
    kind: str,
    rows: int,
    starts: Sequence[datetime],
    values: Sequence[float],
    lines: Sequence[int],
    step: timedelta | None,
    *,
    unit: str,
    node: str,
    timezone: str,
    issues: list[LoadIssue],
) -> PriceSeries:
    """Put the rows on a regular grid: reject duplicates and off-grid times, interpolate gaps
    (linearly in time) and report each filled step."""
    if not starts:
        raise DataError(f"{path}: no price rows")
    order = np.argsort(np.array([s.timestamp() for s in starts]), kind="stable")
    ts = [starts[i] for i in order]
    vals = np.array([values[i] for i in order], dtype=np.float64)
    lns = [lines[i] for i in order]
    for a, b in zip(range(len(ts) - 1), range(1, len(ts)), strict=True):
        if ts[a] == ts[b]:
            raise DataError(
                f"{path}:{lns[b]}: time {ts[b].isoformat()} repeats line {lns[a]} (duplicate row)"
            )
    if step is None:
        if len(ts) < 2:
            raise DataError(f"{path}: need at least two rows to know the step length")
        diffs = np.diff(np.array([t.timestamp() for t in ts]))
        step = timedelta(seconds=float(np.min(diffs)))
        if step.total_seconds() <= 0 or (step < timedelta(hours=1) and 3600 % step.total_seconds()):
            raise DataError(f"{path}: step {step} does not divide an hour")
    step_s = step.total_seconds()
    first = ts[0]
    positions = np.array([(t - first).total_seconds() / step_s for t in ts])
    off_grid = np.flatnonzero(np.abs(positions - np.round(positions)) > 1e-9)
    if off_grid.size:
        i = int(off_grid[0])
        raise DataError(
            f"{path}:{lns[i]}: time {ts[i].isoformat()} is not on the {step} grid starting "
            f"{first.isoformat()}"
        )
    n = int(np.round(positions[-1])) + 1
    grid = np.full(n, np.nan)
    grid[np.round(positions).astype(np.int64)] = vals
    index = pd.date_range(pd.Timestamp(first), periods=n, freq=pd.Timedelta(step))
    holes = np.flatnonzero(np.isnan(grid))
    if holes.size:
        known = np.flatnonzero(~np.isnan(grid))
        grid[holes] = np.interp(holes, known, grid[known])
        for h in holes:
            t = index[int(h)].to_pydatetime()
            issues.append(
                LoadIssue("gap-filled", f"no price for {t.isoformat()}; interpolated", timestamp=t)
            )
    series = pd.Series(grid, index=index, name="price")
    report = LoadReport(str(path), kind, rows, tuple(issues))
    return PriceSeries(series, step, unit, node, timezone, report)
