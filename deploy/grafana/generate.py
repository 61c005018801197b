"""Grafana dashboards of open-bess-edge as code: `python deploy/grafana/generate.py` writes
deploy/grafana/dashboards/*.json (provisioned by file, see deploy/grafana/provisioning).
`--check` fails when the committed JSON differs from what this file makes.

Every query names only metrics the code exports (or recording rules of deploy/prometheus/rules);
tests/deploy/test_grafana_live.py runs each panel's query against a real Prometheus scraping a
running gateway. Variables: `$datasource`, `$site` (multi, All = `.*`), `$__rate_interval`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
SITE = 'site=~"$site"'
RATE = "$__rate_interval"
SCHEMA_VERSION = 39


@dataclass(frozen=True)
class Query:
    """One target: a PromQL expression and its legend."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    """One panel: title, kind (timeseries, stat, gauge, bargauge), queries, unit, width."""

    title: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"
    unit: str = "short"
    width: int = 12
    height: int = 8
    description: str = ""
    mappings: tuple[dict[str, Any], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def q(expr: str, legend: str = "") -> Query:
    """A query; whitespace runs in `expr` collapse so the JSON stays one line per query."""
    return Query(" ".join(expr.split()), legend)


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.mappings:
        defaults["mappings"] = list(panel.mappings)
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DS,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
        if panel.kind == "timeseries"
        else {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
        "targets": [
            {
                "datasource": DS,
                "refId": chr(ord("A") + i),
                "expr": query.expr,
                "legendFormat": query.legend or "__auto",
                "range": panel.kind == "timeseries",
                "instant": panel.kind != "timeseries",
            }
            for i, query in enumerate(panel.queries)
        ],
    }
    body.update(panel.extra)
    return body


def _site_variable(metric: str) -> dict[str, Any]:
    return {
        "name": "site",
        "label": "Site",
        "type": "query",
        "datasource": DS,
        "query": {"query": f"label_values({metric}, site)", "refId": "site"},
        "definition": f"label_values({metric}, site)",
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def dashboard(
    uid: str, title: str, panels: list[Panel], site_metric: str | None = None
) -> dict[str, Any]:
    """A whole dashboard; panels flow left to right, 24 columns wide."""
    variables: list[dict[str, Any]] = [
        {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
        }
    ]
    if site_metric is not None:
        variables.append(_site_variable(site_metric))
    laid_out = []
    x = y = row_h = 0
    for i, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_h = 0, y + row_h, 0
        laid_out.append(_panel_json(panel, i, x, y))
        x += panel.width
        row_h = max(row_h, panel.height)
    return {
        "uid": uid,
        "title": title,
        "tags": ["bessai"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [],
        "panels": laid_out,
    }


def on_site(metric: str) -> str:
    """`metric` restricted to the sites chosen in `$site`."""
    return f"{metric}{{{SITE}}}"


def rate_sum(metric: str, by: str = "site", *, per_minute: bool = False) -> str:
    """The rate of a counter of the chosen sites summed by `by`, per second or per minute."""
    expr = f"sum by ({by}) (rate({on_site(metric)}[{RATE}]))"
    return f"{expr} * 60" if per_minute else expr


def stat(title: str, *queries: Query, unit: str = "short", width: int = 6, **kw: Any) -> Panel:
    """A stat panel (the last value of each query)."""
    return Panel(title, queries, "stat", unit, width, **kw)


def series(title: str, *queries: Query, unit: str = "short", width: int = 12, **kw: Any) -> Panel:
    """A time-series panel."""
    return Panel(title, queries, unit=unit, width=width, **kw)


def per_site_stat(title: str, metric: str, unit: str = "short", **kw: Any) -> Panel:
    """A stat of one gauge, one value per chosen site."""
    return stat(title, q(on_site(metric), "{{site}}"), unit=unit, **kw)


def soc_series() -> Panel:
    """The state of charge of each chosen site over time."""
    return series(
        "State of charge", q(on_site("bessai_soc_pct"), "{{site}}"), unit="percent", width=8
    )


def dispatch_series(title: str, width: int) -> Panel:
    """The setpoint after the safety guard against the measured battery power."""
    return series(
        title,
        q(on_site("bessai_setpoint_w"), "setpoint {{site}}"),
        q(on_site("bessai_battery_power_w"), "measured {{site}}"),
        unit="watt",
        width=width,
    )


def per_minute_series(title: str, metric: str, width: int = 12) -> Panel:
    """A counter of the chosen sites per minute, one line per site."""
    return series(title, q(rate_sum(metric, per_minute=True), "{{site}}"), width=width)


SAFETY_MAPPINGS = (
    {
        "type": "value",
        "options": {
            "0": {"text": "normal", "color": "green"},
            "1": {"text": "limited", "color": "orange"},
            "2": {"text": "SAFE", "color": "red"},
        },
    },
)


def _site_plant_panels() -> list[Panel]:
    power = [
        q(on_site(f"bessai_{name}_power_w"), f"{name} {{{{site}}}}")
        for name in ("battery", "pv", "grid", "load")
    ]
    return [
        per_site_stat("State of charge", "bessai_soc_pct", "percent"),
        per_site_stat(
            "Safety state",
            "bessai_safety_state",
            mappings=SAFETY_MAPPINGS,
            description="normal, limited (clamped by a limit) or SAFE (dispatch stopped)",
        ),
        per_site_stat("Battery temperature", "bessai_battery_temp_c", "celsius"),
        per_site_stat(
            "Age of battery data",
            "bessai_data_age_seconds",
            "s",
            description="over sites.safety.stale_after_s the site goes SAFE",
        ),
        series(
            "Power flows (battery > 0 charging, grid > 0 importing)",
            *power,
            unit="watt",
            width=16,
        ),
        dispatch_series("Setpoint after the safety guard", 8),
        soc_series(),
    ]


def _site_cycle_and_modbus_panels() -> list[Panel]:
    modbus = [
        q(
            rate_sum(f"bessai_modbus_{name}_total", "site, device"),
            f"{name} {{{{site}}}}/{{{{device}}}}",
        )
        for name in ("requests", "errors", "timeouts")
    ]
    p50 = rate_sum("bessai_cycle_duration_seconds_bucket", "site, le")
    return [
        series(
            "Cycle duration",
            q(on_site("site:bessai_cycle_duration_seconds:p95_5m"), "p95 {{site}}"),
            q(
                f"histogram_quantile(0.5, {p50})",
                "p50 {{site}}",
            ),
            unit="s",
            width=8,
        ),
        series(
            "Cycles and overruns per second",
            q(rate_sum("bessai_cycles_total"), "cycles {{site}}"),
            q(rate_sum("bessai_cycle_overruns_total"), "overruns {{site}}"),
            unit="ops",
            width=8,
        ),
        series("Modbus requests, errors and timeouts per second", *modbus, unit="reqps", width=8),
        series(
            "Modbus error ratio (5 min)",
            q(on_site("site:bessai_modbus_errors:ratio_rate5m"), "{{site}}"),
            unit="percentunit",
            width=8,
        ),
        series(
            "Modbus latency of the last request",
            q(on_site("bessai_modbus_last_latency_seconds"), "{{site}}/{{device}}"),
            unit="s",
            width=8,
        ),
        stat(
            "TCP connections to devices (increase, 1 h)",
            q(f"increase({on_site('bessai_modbus_connects_total')}[1h])", "{{site}}/{{device}}"),
        ),
        series(
            "Safety guard: blocked, clamped, registers written per minute",
            q(rate_sum("bessai_safety_blocks_total", per_minute=True), "blocked {{site}}"),
            q(rate_sum("bessai_safety_clamps_total", per_minute=True), "clamped {{site}}"),
            q(rate_sum("bessai_device_writes_total", per_minute=True), "writes {{site}}"),
        ),
        stat(
            "Site task restarts (1 h)",
            q(f"increase({on_site('bessai_site_restarts_total')}[1h])", "{{site}}"),
        ),
    ]


def _site_telemetry_panels() -> list[Panel]:
    return [
        series(
            "Outbox: waiting envelopes and oldest age",
            q("sum by (instance) (bessai_outbox_rows)", "rows {{instance}}"),
            q("max by (instance) (bessai_outbox_oldest_age_seconds)", "oldest age s {{instance}}"),
            width=8,
        ),
        stat(
            "Outbox size",
            q("sum by (instance) (bessai_outbox_bytes)", "{{instance}}"),
            unit="bytes",
            width=4,
        ),
        stat("Outbox storage state", q("bessai_outbox_storage_state == 1", "{{state}}"), width=4),
        stat("Held in memory (disk full)", q("sum(bessai_outbox_held_in_memory)"), width=4),
        stat(
            "Outbox drops (1 h)",
            q(
                f"sum by (site, kind) (increase({on_site('bessai_outbox_dropped_total')}[1h]))",
                "{{site}} {{kind}}",
            ),
            width=4,
        ),
        series(
            "Envelopes committed per second",
            q(rate_sum("bessai_telemetry_emitted_total", "site, kind"), "{{site}} {{kind}}"),
            unit="ops",
            width=8,
        ),
        stat("Sink state", q("bessai_sink_state == 1", "{{sink}}: {{state}}"), width=8),
        series(
            "Sinks: pending, acknowledged and failed",
            q("bessai_sink_pending_rows", "pending {{sink}}"),
            q(f"rate(bessai_sink_published_total[{RATE}])", "acked/s {{sink}}"),
            q(f"rate(bessai_sink_publish_errors_total[{RATE}])", "errors/s {{sink}}"),
            width=8,
        ),
        stat(
            "Configured sinks",
            q("sum by (instance) (bessai_telemetry_sinks)"),
            width=4,
            description="0: telemetry is kept nowhere",
        ),
        stat(
            "Since last sink acknowledgement",
            q("time() - (bessai_sink_last_ack_timestamp_seconds > 0)", "{{sink}}"),
            unit="s",
            width=4,
        ),
        stat(
            "Active alerts by severity",
            q("sum by (severity) (bessai_alerts_active)", "{{severity}}"),
            width=8,
        ),
        Panel(
            "Alerts fired (24 h)",
            (q("sum by (severity) (increase(bessai_alerts_fired_total[24h]))", "{{severity}}"),),
            "bargauge",
            width=8,
        ),
        series(
            "Modbus proxy: clients and requests per second",
            q(on_site("bessai_proxy_clients"), "clients {{site}}"),
            q(rate_sum("bessai_proxy_requests_total", "site, answer"), "{{answer}} {{site}}"),
        ),
    ]


def site_dashboard() -> dict[str, Any]:
    """One or more sites: plant values, safety, the cycle, Modbus, outbox, sinks, alerts."""
    panels = _site_plant_panels() + _site_cycle_and_modbus_panels() + _site_telemetry_panels()
    return dashboard("bessai-site", "open-bess-edge / site", panels, "bessai_cycles_total")


def market_dashboard() -> dict[str, Any]:
    """What the arbitrage does: setpoint against measurement, energy moved, CO2."""
    panels = [
        dispatch_series("Dispatch: setpoint and measured battery power", 16),
        soc_series(),
        *(
            stat(
                f"{title} (24 h)",
                q(
                    f"sum by (site) (avg_over_time({on_site(metric)}[24h])) * 24 / 1000",
                    "{{site}}",
                ),
                unit="kwatth",
                description="the average power of the last 24 h times 24 h (a gap counts at "
                "the average)",
            )
            for title, metric in (
                ("Energy charged", "site:bessai_battery_charge_power_w:clamped"),
                ("Energy discharged", "site:bessai_battery_discharge_power_w:clamped"),
                ("Grid import", "site:bessai_grid_import_power_w:clamped"),
                ("PV energy", "bessai_pv_power_w"),
            )
        ),
        series(
            "CO2 avoided since start (< 0: added)",
            q(on_site("bessai_carbon_avoided_kg"), "{{site}} {{method}}"),
            unit="masskg",
        ),
        series(
            "Grid emission factor of the last interval",
            q(on_site("bessai_carbon_intensity_g_kwh"), "{{site}} {{method}}"),
            extra={"fieldConfig": {"defaults": {"unit": "g/kWh"}, "overrides": []}},
        ),
        per_minute_series(
            "Registers written to the inverter per minute", "bessai_device_writes_total", 24
        ),
    ]
    return dashboard(
        "bessai-market", "open-bess-edge / market and arbitrage", panels, "bessai_setpoint_w"
    )


def fleet_dashboard() -> dict[str, Any]:
    """The fleet backend (`bessai fleet serve`): sites reporting, capacity, SOC and flexibility,
    the consumer's lag, NATS connection and throughput."""
    consumed = [
        q(f"sum(rate(fleet_{counter}_total[{RATE}]))", legend)
        for counter, legend in (
            ("envelopes_written", "stored"),
            ("envelopes_duplicate", "duplicate"),
            ("envelopes_rejected", "rejected"),
            ("db_errors", "database errors"),
        )
    ]
    panels = [
        stat("Sites reporting", q("max(fleet_sites_active)")),
        stat("Fleet capacity", q("max(fleet_total_capacity_kwh)"), unit="kwatth"),
        stat("Fleet services up", q('sum(up{job="bessai-fleet"})')),
        stat("Consumer lag (max)", q("job:fleet_consumer_lag_messages:max")),
        series("Consumer lag by instance", q("fleet_consumer_lag_messages", "{{instance}}")),
        series("Sites reporting over time", q("max(fleet_sites_active)", "sites")),
        stat("Fleet SOC", q("max(fleet_soc_pct)"), unit="percent"),
        stat("Sites known", q("max(fleet_sites)")),
        stat("Sites in SAFE", q("max(fleet_sites_safe)")),
        stat("Consumers connected to NATS", q("sum(fleet_nats_connected)")),
        series(
            "Flexibility over the horizon",
            q("max by (direction) (fleet_flexibility_kwh)", "{{direction}}"),
            unit="kwatth",
        ),
        series("Envelopes consumed", *consumed, unit="ops"),
    ]
    return dashboard("bessai-fleet", "open-bess-edge / fleet", panels)


def security_dashboard() -> dict[str, Any]:
    """The security monitor and every path that can write to the inverter."""
    panels = [
        Panel(
            "Security alerts by kind (1 h)",
            (q("sum by (kind) (increase(ids_alerts_total[1h]))", "{{kind}}"),),
            "bargauge",
            width=12,
        ),
        series(
            "Anomaly score",
            q("ids_anomaly_score", "{{instance}}"),
            extra={
                "fieldConfig": {"defaults": {"unit": "short", "min": 0, "max": 1}, "overrides": []}
            },
        ),
        series(
            "Proxy writes by outcome per minute",
            q(
                rate_sum("bessai_proxy_writes_total", "site, outcome, code", per_minute=True),
                "{{site}} {{outcome}} {{code}}",
            ),
            description="refused: a client that is not a listed writer",
        ),
        series("Modbus proxy clients", q(on_site("bessai_proxy_clients"), "{{site}}")),
        per_minute_series("Safety guard blocks per minute", "bessai_safety_blocks_total"),
        per_minute_series("Registers written to devices per minute", "bessai_device_writes_total"),
    ]
    return dashboard("bessai-security", "open-bess-edge / security", panels, "bessai_proxy_clients")


DASHBOARDS = {
    "site.json": site_dashboard,
    "market.json": market_dashboard,
    "fleet.json": fleet_dashboard,
    "security.json": security_dashboard,
}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {
        name: json.dumps(make(), indent=2, ensure_ascii=False) + "\n"
        for name, make in DASHBOARDS.items()
    }


def main(argv: list[str]) -> int:
    """Write the dashboards, or with `--check` report the ones that differ."""
    stale = []
    for name, text in render().items():
        path = OUT / name
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python deploy/grafana/generate.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
