"""Arbitrage dispatch: the optimizer, the rule-engine baseline and the back-test. Pure: no I/O
outside `commands.py`."""

from bessai.optimize.model import (
    Bands,
    Battery,
    Risk,
    Schedule,
    Site,
    Violation,
    cell_throughput_kwh,
    optimize,
)

__all__ = [
    "Bands",
    "Battery",
    "Risk",
    "Schedule",
    "Site",
    "Violation",
    "cell_throughput_kwh",
    "optimize",
]
