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


def site_dashboard() -> dict[str, Any]:
    """One or more sites: plant values, safety, the cycle, Modbus, outbox, sinks, alerts."""
    power = [
        q(f"bessai_battery_power_w{{{SITE}}}", "battery {{site}}"),
        q(f"bessai_pv_power_w{{{SITE}}}", "pv {{site}}"),
        q(f"bessai_grid_power_w{{{SITE}}}", "grid {{site}}"),
        q(f"bessai_load_power_w{{{SITE}}}", "load {{site}}"),
    ]
    panels = [
        Panel(
            "State of charge", (q(f"bessai_soc_pct{{{SITE}}}", "{{site}}"),), "stat", "percent", 6
        ),
        Panel(
            "Safety state",
            (q(f"bessai_safety_state{{{SITE}}}", "{{site}}"),),
            "stat",
            width=6,
            mappings=SAFETY_MAPPINGS,
            description="normal, limited (clamped by a limit) or SAFE (dispatch stopped)",
        ),
        Panel(
            "Battery temperature",
            (q(f"bessai_battery_temp_c{{{SITE}}}", "{{site}}"),),
            "stat",
            "celsius",
            6,
        ),
        Panel(
            "Age of battery data",
            (q(f"bessai_data_age_seconds{{{SITE}}}", "{{site}}"),),
            "stat",
            "s",
            6,
            description="over sites.safety.stale_after_s the site goes SAFE",
        ),
        Panel(
            "Power flows (battery > 0 charging, grid > 0 importing)",
            tuple(power),
            unit="watt",
            width=16,
        ),
        Panel(
            "Setpoint after the safety guard",
            (
                q(f"bessai_setpoint_w{{{SITE}}}", "setpoint {{site}}"),
                q(f"bessai_battery_power_w{{{SITE}}}", "measured {{site}}"),
            ),
            unit="watt",
            width=8,
        ),
        Panel(
            "State of charge",
            (q(f"bessai_soc_pct{{{SITE}}}", "{{site}}"),),
            unit="percent",
            width=8,
        ),
        Panel(
            "Cycle duration",
            (
                q(f"site:bessai_cycle_duration_seconds:p95_5m{{{SITE}}}", "p95 {{site}}"),
                q(
                    f"histogram_quantile(0.5, sum by (site, le) "
                    f"(rate(bessai_cycle_duration_seconds_bucket{{{SITE}}}[{RATE}])))",
                    "p50 {{site}}",
                ),
            ),
            unit="s",
            width=8,
        ),
        Panel(
            "Cycles and overruns per second",
            (
                q(
                    f"sum by (site) (rate(bessai_cycles_total{{{SITE}}}[{RATE}]))",
                    "cycles {{site}}",
                ),
                q(
                    f"sum by (site) (rate(bessai_cycle_overruns_total{{{SITE}}}[{RATE}]))",
                    "overruns {{site}}",
                ),
            ),
            unit="ops",
            width=8,
        ),
        Panel(
            "Modbus requests, errors and timeouts per second",
            (
                q(
                    f"sum by (site, device) (rate(bessai_modbus_requests_total{{{SITE}}}[{RATE}]))",
                    "requests {{site}}/{{device}}",
                ),
                q(
                    f"sum by (site, device) (rate(bessai_modbus_errors_total{{{SITE}}}[{RATE}]))",
                    "errors {{site}}/{{device}}",
                ),
                q(
                    f"sum by (site, device) (rate(bessai_modbus_timeouts_total{{{SITE}}}[{RATE}]))",
                    "timeouts {{site}}/{{device}}",
                ),
            ),
            unit="reqps",
            width=8,
        ),
        Panel(
            "Modbus error ratio (5 min)",
            (q(f"site:bessai_modbus_errors:ratio_rate5m{{{SITE}}}", "{{site}}"),),
            unit="percentunit",
            width=8,
        ),
        Panel(
            "Modbus latency of the last request",
            (q(f"bessai_modbus_last_latency_seconds{{{SITE}}}", "{{site}}/{{device}}"),),
            unit="s",
            width=8,
        ),
        Panel(
            "TCP connections to devices (increase, 1 h)",
            (q(f"increase(bessai_modbus_connects_total{{{SITE}}}[1h])", "{{site}}/{{device}}"),),
            "stat",
            width=6,
        ),
        Panel(
            "Safety guard: blocked, clamped, registers written per minute",
            (
                q(
                    f"sum by (site) (rate(bessai_safety_blocks_total{{{SITE}}}[{RATE}])) * 60",
                    "blocked {{site}}",
                ),
                q(
                    f"sum by (site) (rate(bessai_safety_clamps_total{{{SITE}}}[{RATE}])) * 60",
                    "clamped {{site}}",
                ),
                q(
                    f"sum by (site) (rate(bessai_device_writes_total{{{SITE}}}[{RATE}])) * 60",
                    "writes {{site}}",
                ),
            ),
            width=12,
        ),
        Panel(
            "Site task restarts (1 h)",
            (q(f"increase(bessai_site_restarts_total{{{SITE}}}[1h])", "{{site}}"),),
            "stat",
            width=6,
        ),
        Panel(
            "Outbox: waiting envelopes and oldest age",
            (
                q("sum by (instance) (bessai_outbox_rows)", "rows {{instance}}"),
                q(
                    "max by (instance) (bessai_outbox_oldest_age_seconds)",
                    "oldest age s {{instance}}",
                ),
            ),
            width=8,
        ),
        Panel(
            "Outbox size",
            (q("sum by (instance) (bessai_outbox_bytes)", "{{instance}}"),),
            "stat",
            "bytes",
            4,
        ),
        Panel(
            "Outbox storage state",
            (q("bessai_outbox_storage_state == 1", "{{state}}"),),
            "stat",
            width=4,
        ),
        Panel(
            "Held in memory (disk full)", (q("sum(bessai_outbox_held_in_memory)"),), "stat", width=4
        ),
        Panel(
            "Outbox drops (1 h)",
            (
                q(
                    f"sum by (site, kind) (increase(bessai_outbox_dropped_total{{{SITE}}}[1h]))",
                    "{{site}} {{kind}}",
                ),
            ),
            "stat",
            width=4,
        ),
        Panel(
            "Envelopes committed per second",
            (
                q(
                    f"sum by (site, kind) (rate(bessai_telemetry_emitted_total{{{SITE}}}[{RATE}]))",
                    "{{site}} {{kind}}",
                ),
            ),
            unit="ops",
            width=8,
        ),
        Panel("Sink state", (q("bessai_sink_state == 1", "{{sink}}: {{state}}"),), "stat", width=8),
        Panel(
            "Sinks: pending, acknowledged and failed",
            (
                q("bessai_sink_pending_rows", "pending {{sink}}"),
                q(f"rate(bessai_sink_published_total[{RATE}])", "acked/s {{sink}}"),
                q(f"rate(bessai_sink_publish_errors_total[{RATE}])", "errors/s {{sink}}"),
            ),
            width=8,
        ),
        Panel(
            "Configured sinks",
            (q("sum by (instance) (bessai_telemetry_sinks)"),),
            "stat",
            width=4,
            description="0: telemetry is kept nowhere",
        ),
        Panel(
            "Since last sink acknowledgement",
            (q("time() - (bessai_sink_last_ack_timestamp_seconds > 0)", "{{sink}}"),),
            "stat",
            "s",
            4,
        ),
        Panel(
            "Active alerts by severity",
            (q("sum by (severity) (bessai_alerts_active)", "{{severity}}"),),
            "stat",
            width=8,
        ),
        Panel(
            "Alerts fired (24 h)",
            (q("sum by (severity) (increase(bessai_alerts_fired_total[24h]))", "{{severity}}"),),
            "bargauge",
            width=8,
        ),
        Panel(
            "Modbus proxy: clients and requests per second",
            (
                q(f"bessai_proxy_clients{{{SITE}}}", "clients {{site}}"),
                q(
                    f"sum by (site, answer) (rate(bessai_proxy_requests_total{{{SITE}}}[{RATE}]))",
                    "{{answer}} {{site}}",
                ),
            ),
            width=12,
        ),
    ]
    return dashboard("bessai-site", "open-bess-edge / site", panels, "bessai_cycles_total")


def market_dashboard() -> dict[str, Any]:
    """What the arbitrage does: setpoint against measurement, energy moved, CO2."""
    panels = [
        Panel(
            "Dispatch: setpoint and measured battery power",
            (
                q(f"bessai_setpoint_w{{{SITE}}}", "setpoint {{site}}"),
                q(f"bessai_battery_power_w{{{SITE}}}", "measured {{site}}"),
            ),
            unit="watt",
            width=16,
        ),
        Panel(
            "State of charge",
            (q(f"bessai_soc_pct{{{SITE}}}", "{{site}}"),),
            unit="percent",
            width=8,
        ),
        *(
            Panel(
                f"{title} (24 h)",
                (
                    q(
                        f"sum by (site) (avg_over_time({series}{{{SITE}}}[24h])) * 24 / 1000",
                        "{{site}}",
                    ),
                ),
                "stat",
                "kwatth",
                6,
                description="the average power of the last 24 h times 24 h (a gap counts at "
                "the average)",
            )
            for title, series in (
                ("Energy charged", "site:bessai_battery_charge_power_w:clamped"),
                ("Energy discharged", "site:bessai_battery_discharge_power_w:clamped"),
                ("Grid import", "site:bessai_grid_import_power_w:clamped"),
                ("PV energy", "bessai_pv_power_w"),
            )
        ),
        Panel(
            "CO2 avoided since start (< 0: added)",
            (q(f"bessai_carbon_avoided_kg{{{SITE}}}", "{{site}} {{method}}"),),
            unit="masskg",
            width=12,
        ),
        Panel(
            "Grid emission factor of the last interval",
            (q(f"bessai_carbon_intensity_g_kwh{{{SITE}}}", "{{site}} {{method}}"),),
            width=12,
            extra={"fieldConfig": {"defaults": {"unit": "g/kWh"}, "overrides": []}},
        ),
        Panel(
            "Registers written to the inverter per minute",
            (
                q(
                    f"sum by (site) (rate(bessai_device_writes_total{{{SITE}}}[{RATE}])) * 60",
                    "{{site}}",
                ),
            ),
            width=24,
        ),
    ]
    return dashboard(
        "bessai-market", "open-bess-edge / market and arbitrage", panels, "bessai_setpoint_w"
    )


def fleet_dashboard() -> dict[str, Any]:
    """The fleet backend (`bessai fleet serve`): sites reporting, capacity, SOC and flexibility,
    the consumer's lag, NATS connection and throughput."""
    panels = [
        Panel("Sites reporting", (q("max(fleet_sites_active)"),), "stat", width=6),
        Panel("Fleet capacity", (q("max(fleet_total_capacity_kwh)"),), "stat", "kwatth", 6),
        Panel("Fleet services up", (q('sum(up{job="bessai-fleet"})'),), "stat", width=6),
        Panel("Consumer lag (max)", (q("job:fleet_consumer_lag_messages:max"),), "stat", width=6),
        Panel(
            "Consumer lag by instance",
            (q("fleet_consumer_lag_messages", "{{instance}}"),),
            width=12,
        ),
        Panel("Sites reporting over time", (q("max(fleet_sites_active)", "sites"),), width=12),
        Panel("Fleet SOC", (q("max(fleet_soc_pct)"),), "stat", "percent", 6),
        Panel("Sites known", (q("max(fleet_sites)"),), "stat", width=6),
        Panel("Sites in SAFE", (q("max(fleet_sites_safe)"),), "stat", width=6),
        Panel("Consumers connected to NATS", (q("sum(fleet_nats_connected)"),), "stat", width=6),
        Panel(
            "Flexibility over the horizon",
            (q("max by (direction) (fleet_flexibility_kwh)", "{{direction}}"),),
            unit="kwatth",
            width=12,
        ),
        Panel(
            "Envelopes consumed",
            (
                q("sum(rate(fleet_envelopes_written_total[$__rate_interval]))", "stored"),
                q("sum(rate(fleet_envelopes_duplicate_total[$__rate_interval]))", "duplicate"),
                q("sum(rate(fleet_envelopes_rejected_total[$__rate_interval]))", "rejected"),
                q("sum(rate(fleet_db_errors_total[$__rate_interval]))", "database errors"),
            ),
            unit="ops",
            width=12,
        ),
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
        Panel(
            "Anomaly score",
            (q("ids_anomaly_score", "{{instance}}"),),
            width=12,
            extra={
                "fieldConfig": {"defaults": {"unit": "short", "min": 0, "max": 1}, "overrides": []}
            },
        ),
        Panel(
            "Proxy writes by outcome per minute",
            (
                q(
                    "sum by (site, outcome, code) "
                    f"(rate(bessai_proxy_writes_total{{{SITE}}}[{RATE}])) * 60",
                    "{{site}} {{outcome}} {{code}}",
                ),
            ),
            width=12,
            description="refused: a client that is not a listed writer",
        ),
        Panel(
            "Modbus proxy clients", (q(f"bessai_proxy_clients{{{SITE}}}", "{{site}}"),), width=12
        ),
        Panel(
            "Safety guard blocks per minute",
            (
                q(
                    f"sum by (site) (rate(bessai_safety_blocks_total{{{SITE}}}[{RATE}])) * 60",
                    "{{site}}",
                ),
            ),
            width=12,
        ),
        Panel(
            "Registers written to devices per minute",
            (
                q(
                    f"sum by (site) (rate(bessai_device_writes_total{{{SITE}}}[{RATE}])) * 60",
                    "{{site}}",
                ),
            ),
            width=12,
        ),
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
