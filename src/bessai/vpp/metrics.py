"""The VEN's Prometheus metrics, per site, on the gateway's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class VppMetrics:
    """Flexibility offered, events received, reports sent, VTN reachability."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.flex_kw = Gauge(
            "bessai_vpp_flex_capacity_kw",
            "Power the battery can still shift: up = toward discharge, down = toward charge",
            ["site", "direction"],
            registry=registry,
        )
        self.events = Counter(
            "bessai_vpp_events_received",
            "OpenADR events received (new or changed)",
            ["site"],
            registry=registry,
        )
        self.reports = Counter(
            "bessai_vpp_reports_sent",
            "OpenADR reports the VTN accepted",
            ["site"],
            registry=registry,
        )
        self.active = Gauge(
            "bessai_vpp_active_events", "OpenADR events in force now", ["site"], registry=registry
        )
        self.vtn_up = Gauge(
            "bessai_vpp_vtn_up",
            "1 when the last poll of the VTN succeeded",
            ["site"],
            registry=registry,
        )
