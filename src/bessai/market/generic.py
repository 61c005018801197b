"""Reader of the generic ``timestamp,price`` file (formats in :mod:`bessai.market.prices`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bessai.errors import DataError
from bessai.market.regular import DEFAULT_MAX_GAP_H, RawPrices, regularise
from bessai.market.series import PriceSeries, parse_unit
from bessai.market.table import Table


def _unit_of(path: Path, price_header: str, unit: str | None) -> str:
    """``unit`` if given, else from a header such as ``price_clp_kwh``, else USD/MWh."""
    if unit is None:
        unit = "USD/MWh"
        parts = price_header.split("_")
        if len(parts) == 3 and parts[0] == "price":
            unit = f"{parts[1].upper()}/{'MWh' if parts[2].lower() == 'mwh' else 'kWh'}"
    try:
        parse_unit(unit)
    except ValueError as exc:
        raise DataError(f"{path}:1: {exc}") from None
    return unit


def load_generic(
    path: Path,
    *,
    unit: str | None,
    node: str | None,
    timezone: str = "UTC",
    max_gap_h: float = DEFAULT_MAX_GAP_H,
) -> PriceSeries:
    """Read ``timestamp,price`` rows, each timestamp ISO-8601 with an offset. The file says
    nothing about its market's time zone: ``timezone`` (default UTC) is where its market days
    start and end."""
    table = Table(path, ",")
    if len(table.header) != 2 or table.header[0].strip() != "timestamp":
        raise DataError(f"{path}:1: expected header 'timestamp,price', found {table.header}")
    unit = _unit_of(path, table.header[1].strip(), unit)
    raw = RawPrices(path, "generic", unit, node or path.stem, timezone, None)
    for line, row in table.rows():
        raw.rows += 1
        text = row[0].strip()
        try:
            ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise table.error(line, 0, f"{text!r} is not an ISO-8601 timestamp") from None
        if ts.tzinfo is None:
            raise table.error(
                line, 0, f"{text!r} has no UTC offset; write e.g. '{text}+00:00' or '{text}Z'"
            )
        raw.add(ts.astimezone(UTC), table.number(line, 1, row[1]), line)
    return regularise(raw, max_gap_h)
