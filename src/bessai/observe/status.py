"""The compact live status a person running `bessai run` sees in the terminal.

The view is a snapshot taken when it is built (on the gateway's event loop) and laid out when
rich renders it, for the terminal's width at that moment: from `WIDE_MIN_COLUMNS` on, one table
with every column; narrower (an 80-column terminal), the measurements in the table and, under
it, one folded line per site with the guard's verdict, the controller and its reason, and the
cycle.

Every text that came from a user, a device or a file (an override's reason, a safety reason, a
device alarm) is shown exactly as stored: cells are `rich.text.Text`, never parsed as markup or
emoji, so `[/bold]` cannot break the display and `:x:` stays three characters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.table import Table
from rich.text import Text

from bessai.control.site import SiteRunner
from bessai.observe.monitor import Monitor

STATE_STYLE = {"normal": "green", "limited": "yellow", "safe": "bold red"}
#: below this width the controller, setpoint and cycle move under the table
WIDE_MIN_COLUMNS = 140
FOOTER_SEPARATOR = "   |   "
MEASURES = ("SOC", "battery", "PV", "grid", "temp")


def _w(value: float | None) -> str:
    return "-" if value is None else f"{value / 1000:+.2f} kW"


@dataclass(frozen=True, slots=True)
class SiteLine:
    """One site's status as text, taken from its last cycle record."""

    site: str
    measures: tuple[str, str, str, str, str]  # SOC, battery, PV, grid, temp
    state: str
    state_reason: str
    controller: str
    setpoint: str
    cycle: str

    @classmethod
    def of(cls, site: SiteRunner) -> SiteLine:
        r = site.last
        if r is None:
            return cls(site.id, ("-", "-", "-", "-", "-"), "-", "", "-", "-", "starting")
        m = r.measurements
        return cls(
            site=site.id,
            measures=(
                "-" if m.soc_pct is None else f"{m.soc_pct:.1f} %",
                _w(m.battery_power_w),
                _w(m.pv_power_w),
                _w(m.grid_power_w),
                "-" if m.battery_temp_c is None else f"{m.battery_temp_c:.1f} °C",
            ),
            state=r.safety_state.value,
            state_reason=r.safety_reasons[0] if r.safety_reasons else "",
            controller=f"{r.proposal.controller}: {r.proposal.reason}",
            setpoint=f"{_w(r.decision.setpoint_w)} {r.decision.outcome.value}",
            cycle=f"#{r.cycle} {r.duration_s * 1000:.0f} ms",
        )

    def state_text(self, with_reason: bool) -> Text:
        reason = f" ({self.state_reason})" if with_reason and self.state_reason else ""
        return Text(self.state + reason, style=STATE_STYLE.get(self.state, ""))


def _table() -> Table:
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    table.add_column("site", overflow="fold")
    for name in MEASURES:
        table.add_column(name, no_wrap=True)
    return table


def _wide(lines: list[SiteLine]) -> Table:
    table = _table()
    table.add_column("safety", overflow="fold", ratio=1)
    table.add_column("controller", overflow="fold", ratio=2)
    table.add_column("setpoint", no_wrap=True)
    table.add_column("cycle", no_wrap=True)
    for line in lines:
        table.add_row(
            Text(line.site),
            *map(Text, line.measures),
            line.state_text(with_reason=True),
            Text(line.controller),
            Text(line.setpoint),
            Text(line.cycle),
        )
    return table


def _narrow(lines: list[SiteLine]) -> Group:
    table = _table()
    table.add_column("safety", no_wrap=True)
    details = Table.grid(padding=(0, 1))
    details.add_column(no_wrap=True)
    details.add_column(overflow="fold")
    for line in lines:
        table.add_row(Text(line.site), *map(Text, line.measures), line.state_text(False))
        # The verdict first: a long reason must not push it off the end.
        detail = Text.assemble((line.setpoint, "bold"), "  ", line.controller, "  ", line.cycle)
        if line.state_reason:
            detail.append(f"\n{line.state}: {line.state_reason}", STATE_STYLE.get(line.state, ""))
        details.add_row(Text(f"{line.site}:"), detail)
    return Group(table, details)


def _footer(pieces: list[str], width: int) -> Text:
    """The pieces on as few lines as fit `width`, never split inside a piece that fits."""
    lines: list[str] = []
    for piece in pieces:
        if lines and len(lines[-1]) + len(FOOTER_SEPARATOR) + len(piece) <= width:
            lines[-1] += FOOTER_SEPARATOR + piece
        else:
            lines.append(piece)
    return Text("\n".join(lines), style="dim", overflow="fold")


class StatusView:
    """What `status_table` returns: a snapshot, laid out for the width it is rendered at."""

    def __init__(self, lines: list[SiteLine], footer: list[str]) -> None:
        self.lines = lines
        self.footer = footer

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        width = options.max_width
        yield _wide(self.lines) if width >= WIDE_MIN_COLUMNS else _narrow(self.lines)
        yield _footer(self.footer, width)


def status_table(monitor: Monitor, urls: list[str]) -> StatusView:
    """The gateway's status now: every site, the fleet, the outbox and where to look."""
    gateway = monitor.gateway
    lines = [SiteLine.of(site) for site in gateway.sites.values()]
    fleet = gateway.fleet()
    soc = "-" if fleet.weighted_soc_pct is None else f"{fleet.weighted_soc_pct:.1f} %"
    outbox = monitor.telemetry.outbox.stats
    oldest = outbox.oldest_age_s()
    footer = [
        f"fleet: {fleet.sites} site(s), {fleet.capacity_kwh:g} kWh, SOC {soc}, "
        f"{fleet.sites_safe} in SAFE",
        f"outbox {outbox.rows} rows"
        + (f", oldest {oldest:.0f} s" if oldest is not None else "")
        + (f", {outbox.dropped_total} dropped" if outbox.dropped_total else "")
        + ("" if monitor.telemetry.keeps_telemetry else ", telemetry kept nowhere (no sinks)"),
        *urls,
    ]
    return StatusView(lines, footer)
