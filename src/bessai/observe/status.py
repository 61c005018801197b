"""The compact live status a person running `bessai run` sees in the terminal."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from bessai.observe.monitor import Monitor

STATE_STYLE = {"normal": "green", "limited": "yellow", "safe": "bold red"}


def _w(value: float | None) -> str:
    return "-" if value is None else f"{value / 1000:+.2f} kW"


def status_table(monitor: Monitor, urls: list[str]) -> Group:
    gateway = monitor.gateway
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    for column in ("site", "SOC", "battery", "PV", "grid", "temp", "safety", "controller",
                   "setpoint", "cycle"):  # fmt: skip
        table.add_column(column)
    for site in gateway.sites.values():
        r = site.last
        if r is None:
            table.add_row(site.id, *["-"] * 8, "starting")
            continue
        m = r.measurements
        state = r.safety_state.value
        why = f" ({r.safety_reasons[0]})" if r.safety_reasons else ""
        table.add_row(
            site.id,
            "-" if m.soc_pct is None else f"{m.soc_pct:.1f} %",
            _w(m.battery_power_w),
            _w(m.pv_power_w),
            _w(m.grid_power_w),
            "-" if m.battery_temp_c is None else f"{m.battery_temp_c:.1f} °C",
            Text(state + why, style=STATE_STYLE.get(state, "")),
            f"{r.proposal.controller}: {r.proposal.reason}",
            f"{_w(r.decision.setpoint_w)} {r.decision.outcome.value}",
            f"#{r.cycle} {r.duration_s * 1000:.0f} ms",
        )
    fleet = gateway.fleet()
    soc = "-" if fleet.weighted_soc_pct is None else f"{fleet.weighted_soc_pct:.1f} %"
    outbox = monitor.telemetry.outbox.stats
    oldest = outbox.oldest_age_s()
    footer = Text(
        f"fleet: {fleet.sites} site(s), {fleet.capacity_kwh:g} kWh, SOC {soc}, "
        f"{fleet.sites_safe} in SAFE   |   outbox {outbox.rows} rows"
        + (f", oldest {oldest:.0f} s" if oldest is not None else "")
        + (f", {outbox.dropped_total} dropped" if outbox.dropped_total else "")
        + ("" if monitor.telemetry.keeps_telemetry else ", telemetry kept nowhere (no sinks)")
        + "   |   "
        + "   ".join(urls),
        style="dim",
    )
    return Group(table, footer)
