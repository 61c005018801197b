"""Prometheus metrics of the proxy, in the gateway's registry (served at /metrics)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge


class ProxyMetrics:
    """Clients connected, requests by how they were answered, writes by outcome."""

    def __init__(self, site: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.site = site
        self.clients = Gauge(
            "bessai_proxy_clients", "Modbus clients connected to the proxy", ["site"], registry=r
        )
        self.requests = Counter(
            "bessai_proxy_requests",
            "Requests answered by the proxy: from the cycle's image (cache), after a read on "
            "demand (forwarded), busy (stale), another exception, a write, identification, login",
            ["site", "answer"],
            registry=r,
        )
        self.upstream = Counter(
            "bessai_proxy_device_reads",
            "Reads the proxy sent to the device on demand (registers the gateway does not poll)",
            ["site"],
            registry=r,
        )
        self.writes = Counter(
            "bessai_proxy_writes",
            "Client writes by outcome: accepted, clamped, refused (with the exception code)",
            ["site", "outcome", "code"],
            registry=r,
        )
        self.refused_connections = Counter(
            "bessai_proxy_connections_refused",
            "Connections closed at once: address not allowed, or too many clients",
            ["site", "reason"],
            registry=r,
        )

    def answered(self, answer: str) -> None:
        self.requests.labels(self.site, answer).inc()

    def wrote(self, outcome: str, code: int = 0) -> None:
        self.writes.labels(self.site, outcome, str(code)).inc()

    def refused(self, reason: str) -> None:
        self.refused_connections.labels(self.site, reason).inc()

    def device_read(self) -> None:
        self.upstream.labels(self.site).inc()

    def count_clients(self, clients: Callable[[], int]) -> None:
        """The client gauge reads the live count when scraped."""
        self.clients.labels(self.site).set_function(clients)
