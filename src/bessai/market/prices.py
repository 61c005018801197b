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
zone change) is listed in :attr:`PriceSeries.report`, never silently done. A gap longer than
``max_gap_h`` (default 3 h) is not filled: its steps have no price and the days it touches are
left out of back-tests, evaluations and training (:mod:`bessai.market.regular`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bessai.errors import ConfigError, DataError
from bessai.market.cen import SANTIAGO, load_cen
from bessai.market.days import market_days
from bessai.market.generic import load_generic
from bessai.market.regular import DEFAULT_MAX_GAP_H
from bessai.market.series import LoadIssue, LoadReport, PriceSeries, conversion_factor
from bessai.market.smard import BERLIN, SMARD_GERMANY, load_smard

__all__ = [
    "BERLIN",
    "DEFAULT_MAX_GAP_H",
    "FORMATS",
    "SANTIAGO",
    "SMARD_GERMANY",
    "Format",
    "LoadIssue",
    "LoadReport",
    "PriceSeries",
    "check_timezone",
    "conversion_factor",
    "detect_format",
    "load_prices",
    "market_days",
]

Format = Literal["auto", "cen-tsv", "cen-csv", "smard", "generic"]
FORMATS: tuple[str, ...] = ("auto", "cen-tsv", "cen-csv", "smard", "generic")


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


def check_timezone(tz: str) -> str:
    """``tz`` if it is a time zone this machine knows, else a one-line error."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"time zone {tz!r} is unknown; give an IANA name such as America/Santiago or UTC"
        ) from None
    return tz


def load_prices(
    path: str | Path,
    *,
    fmt: Format = "auto",
    column: str | None = None,
    unit: str | None = None,
    node: str | None = None,
    tz: str | None = None,
    max_gap_h: float = DEFAULT_MAX_GAP_H,
) -> PriceSeries:
    """Load a price file into a regular UTC :class:`PriceSeries`.

    ``column`` picks the price column (CEN: ``costo_usd``/``costo_en_dolares`` by default, or
    the CLP/kWh column; SMARD: any zone by name, default ``"Germany"`` stitched across the 2018
    zone change). ``unit`` states the unit of a generic file (default from its header,
    ``price_usd_mwh`` style, else USD/MWh). ``node`` selects the bus of a CEN file holding
    several (by ``nombre``/``barra`` or ``barra_mnemotecnico``); elsewhere it names the
    series. ``tz`` is the market's time zone, where market days start: a generic file's (default
    UTC); CEN (America/Santiago) and SMARD (Europe/Berlin) files fix their own, and another
    ``tz`` is an error. Gaps up to ``max_gap_h`` hours are interpolated, longer ones left
    without a price (:mod:`bessai.market.regular`). Malformed content raises
    :class:`DataError` naming file, line and column.
    """
    p = Path(path)
    kind = detect_format(p) if fmt == "auto" else fmt
    if kind not in FORMATS[1:]:
        raise DataError(f"{p}: unknown price format {fmt!r}; choose one of {', '.join(FORMATS)}")
    zone = _zone_of(p, kind, tz)
    if kind in ("cen-tsv", "cen-csv"):
        delimiter = "\t" if kind == "cen-tsv" else ","
        return load_cen(p, kind, delimiter=delimiter, column=column, node=node, max_gap_h=max_gap_h)
    if kind == "smard":
        return load_smard(p, column=column, node=node, max_gap_h=max_gap_h)
    return load_generic(p, unit=unit, node=node, timezone=zone, max_gap_h=max_gap_h)


#: The market time zone each format fixes (None: the file does not say).
_FORMAT_ZONES: dict[str, str | None] = {
    "cen-tsv": SANTIAGO,
    "cen-csv": SANTIAGO,
    "smard": BERLIN,
    "generic": None,
}


def _zone_of(path: Path, kind: str, tz: str | None) -> str:
    fixed = _FORMAT_ZONES[kind]
    if tz is not None:
        check_timezone(tz)
    if fixed is None:
        return tz or "UTC"
    if tz is not None and tz != fixed:
        raise ConfigError(
            f"{path}: a {kind} file's market days are in {fixed}; a time zone ({tz}) applies "
            "to generic timestamp,price files only"
        )
    return fixed
