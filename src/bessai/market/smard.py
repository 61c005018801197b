"""Reader of SMARD's day-ahead price export (EPEX zones; formats in :mod:`bessai.market.prices`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bessai.errors import DataError
from bessai.market.regular import DEFAULT_MAX_GAP_H, RawPrices, regularise
from bessai.market.series import LoadIssue, PriceSeries
from bessai.market.table import Table

BERLIN = "Europe/Berlin"

# The German bidding zone was split on 2018-10-01; before it the German price is the joint
# DE-AT-LU zone, from it the DE-LU zone. Selecting "Germany" stitches the two.
SMARD_GERMANY = "Germany"
_SMARD_DE_AT_LU = "Germany/Austria/Luxembourg"
_SMARD_DE_LU = "Germany/Luxembourg"
_SMARD_SPLIT = date(2018, 10, 1)


def _zone_columns(table: Table, wanted: str) -> tuple[int, int, bool]:
    """The price column before and from the zone split, and whether the two are stitched."""
    path = table.path
    names = {h.split("[")[0]: i for i, h in enumerate(table.header)}
    zones = [n for n in names if n not in ("Date", "Time of day")]
    stitch = wanted == SMARD_GERMANY and SMARD_GERMANY not in names
    if stitch:
        c_before, c_after = names.get(_SMARD_DE_AT_LU), names.get(_SMARD_DE_LU)
        if c_before is None or c_after is None:
            raise DataError(f"{path}:1: no German price columns; zones are {', '.join(zones)}")
        return c_before, c_after, True
    key = wanted.split("[")[0]
    if key not in names or key in ("Date", "Time of day"):
        raise DataError(f"{path}:1: no zone {wanted!r}; zones are {', '.join(zones)}")
    return names[key], names[key], False


def load_smard(
    path: Path, *, column: str | None, node: str | None, max_gap_h: float = DEFAULT_MAX_GAP_H
) -> PriceSeries:
    """Read a SMARD export: ``column`` names a zone (default Germany, stitched across 2018)."""
    table = Table(path, ";")
    wanted = column or SMARD_GERMANY
    c_before, c_after, stitch = _zone_columns(table, wanted)
    currency = "EUR"
    unit_header = table.header[c_after]
    if "[" in unit_header:
        currency = {"€": "EUR"}.get(unit_header.split("[")[1].split("/")[0], currency)
    name = node or (SMARD_GERMANY if stitch else wanted.split("[")[0])
    raw = RawPrices(path, "smard", f"{currency}/MWh", name, BERLIN, timedelta(hours=1))
    tz = ZoneInfo(BERLIN)
    seen_wall: set[datetime] = set()
    missing: list[int] = []
    for line, row in table.rows():
        raw.rows += 1
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
        if text == "-":
            missing.append(line)
            continue
        raw.add(local.astimezone(UTC), table.number(line, col, text), line)
    if missing:
        # Inside the range they become interpolated gaps; before the first and after the last
        # price the series simply starts later or ends earlier.
        raw.issues.append(
            LoadIssue(
                "missing-value",
                f"{len(missing)} rows have '-' in the price column (first at line {missing[0]})",
                line=missing[0],
            )
        )
    if stitch:
        raw.issues.append(
            LoadIssue(
                "zone-change",
                f"German price is {_SMARD_DE_AT_LU} before {_SMARD_SPLIT} and {_SMARD_DE_LU} "
                "from then on",
                timestamp=datetime(2018, 9, 30, 22, tzinfo=UTC),
            )
        )
    return regularise(raw, max_gap_h)
