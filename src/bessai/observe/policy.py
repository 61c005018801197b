"""Prometheus figures of the learned policy (`controllers.policy`), read from each site's
controller at scrape time: decisions, fallbacks to the plan by kind, inference latency."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bessai.control.learned import LearnedDispatch


class _Site(Protocol):
    id: str
    learned: LearnedDispatch | None


class _Sites(Protocol):
    @property
    def sites(self) -> Mapping[str, _Site]: ...


class PolicyCollector(Collector):
    """`bessai_policy_decisions`, `bessai_policy_fallbacks{kind}` and
    `bessai_policy_inference_ms{quantile}` for every site running a learned policy."""

    def __init__(self, gateway: _Sites) -> None:
        self._gateway = gateway

    def collect(self) -> Iterator[Metric]:
        decisions = CounterMetricFamily(
            "bessai_policy_decisions", "Decisions asked of the learned policy", labels=["site"]
        )
        fallbacks = CounterMetricFamily(
            "bessai_policy_fallbacks",
            "Decisions that fell back to the plan, by kind (missing, card, slow, nan, input)",
            labels=["site", "kind"],
        )
        latency = GaugeMetricFamily(
            "bessai_policy_inference_ms",
            "Learned policy inference time over the last 1000 decisions",
            labels=["site", "quantile"],
        )
        for site in self._gateway.sites.values():
            learned = site.learned
            if learned is None:
                continue
            decisions.add_metric([site.id], learned.decisions)
            for kind, count in sorted(learned.fallbacks.items()):
                fallbacks.add_metric([site.id, kind], count)
            if learned.latencies_ms:
                values = np.asarray(learned.latencies_ms)
                for q in (0.5, 0.99):
                    latency.add_metric([site.id, str(q)], float(np.quantile(values, q)))
        yield from (decisions, fallbacks, latency)


def attach_policy(gateway: _Sites, registry: CollectorRegistry) -> None:
    """Register the policy figures when some site runs a learned policy."""
    if any(site.learned is not None for site in gateway.sites.values()):
        registry.register(PolicyCollector(gateway))
