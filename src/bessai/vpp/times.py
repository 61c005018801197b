"""OpenADR 3 times: RFC 3339 date-times and ISO 8601 durations, with the User Guide's two
conventions (a start of "0001-01-01" means now, a duration of "P9999Y" means for ever)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from bessai.errors import BessaiError

#: "P9999Y": no end
FOREVER = timedelta(days=9999 * 365)
_DURATION = re.compile(
    r"^(?P<sign>-?)P(?=\d|T\d)(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<d>\d+)(?P<dw>[DW]))?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


class OadrFormatError(BessaiError):
    """An OpenADR object a peer sent that this side cannot read."""


def parse_duration(text: str) -> timedelta:
    """An ISO 8601 duration; years count 365 days and months 30 (the spec's own patterns)."""
    match = _DURATION.match(text)
    if match is None:
        raise OadrFormatError(f"duration {text!r} is not ISO 8601 (e.g. PT1H, P1D)")
    g = match.groupdict()
    days = int(g["y"] or 0) * 365 + int(g["mo"] or 0) * 30
    if g["d"]:
        days += int(g["d"]) * (7 if g["dw"] == "W" else 1)
    value = timedelta(
        days=days, hours=int(g["h"] or 0), minutes=int(g["mi"] or 0), seconds=float(g["s"] or 0)
    )
    return -value if g["sign"] else value


def format_duration(value: timedelta) -> str:
    """A duration in the spec's pattern (PT..S with whole seconds at most)."""
    seconds = round(value.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}PT{hours}H{minutes}M{secs}S"


def parse_datetime(text: str, now: datetime) -> datetime:
    """A date-time; "0001-01-01..." means `now`; a naive one is taken as UTC."""
    if text.startswith("0001-01-01"):
        return now
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise OadrFormatError(f"date-time {text!r} is not RFC 3339") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def format_datetime(value: datetime) -> str:
    """RFC 3339 in UTC with a Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
