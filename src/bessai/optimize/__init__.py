"""Arbitrage dispatch: the LP/MILP optimizer, its schedules and explanations, the rule-engine
baseline and following a plan. Pure: no I/O outside `commands.py`.

Layering: `bessai.analysis` (back-test, evaluation) sits above this package and
`bessai.market` (prices, forecasters) below it; nothing here imports `bessai.analysis`."""

from bessai.market.bands import Bands
from bessai.optimize.problem import CarbonPrice, Problem, Risk
from bessai.optimize.schedule import Schedule, Status, Violation
from bessai.optimize.solve import optimize, solve
from bessai.optimize.storage import GridConnection, StorageSpec, cell_throughput_kwh

__all__ = [
    "Bands",
    "CarbonPrice",
    "GridConnection",
    "Problem",
    "Risk",
    "Schedule",
    "Status",
    "StorageSpec",
    "Violation",
    "cell_throughput_kwh",
    "optimize",
    "solve",
]
