"""Prometheus metrics of a federated training: ``fl_rounds_total`` and ``fl_train_loss``.

`bessai fl serve --metrics-port` serves them live, updated from the status file as the rounds
finish; `bessai fl status --prometheus` prints them from the status file (for a textfile
collector).
"""

from __future__ import annotations

import math
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class FlMetrics:
    """The two metrics in their own registry (the process may run nothing else)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rounds = Counter(
            "fl_rounds", "Federated training rounds finished.", registry=self.registry
        )
        self.train_loss = Gauge(
            "fl_train_loss",
            "Mean squared error of the federated model over every site's training rows "
            "(price unit squared); NaN until the last round.",
            registry=self.registry,
        )
        self.train_loss.set(math.nan)
        self._seen = 0

    def update(self, status: dict[str, Any]) -> None:
        """Catch up with ``status`` (the status file's content)."""
        total = int(status.get("rounds_total", 0))
        if total > self._seen:
            self.rounds.inc(total - self._seen)
            self._seen = total
        loss = status.get("train_loss")
        if loss is not None:
            self.train_loss.set(float(loss))

    def text(self) -> str:
        """The exposition text."""
        return generate_latest(self.registry).decode()
