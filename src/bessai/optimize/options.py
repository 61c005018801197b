"""Command-line options of the commands that plan storage (`bessai optimize`, `bessai
backtest`, `bessai forecast eval`), and the objects they build: the storage, the SOC plan and
the risk mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from bessai.errors import ConfigError
from bessai.optimize.problem import Risk

PowerOpt = Annotated[float, typer.Option("--power-kw", help="Charge/discharge power limit.")]
CapacityOpt = Annotated[float, typer.Option("--capacity-kwh", help="Energy capacity.")]
EtaCOpt = Annotated[float, typer.Option("--eta-charge", help="Charge efficiency (0..1].")]
EtaDOpt = Annotated[float, typer.Option("--eta-discharge", help="Discharge efficiency (0..1].")]
SocMinOpt = Annotated[float, typer.Option("--soc-min", help="Minimum SOC, %.")]
SocMaxOpt = Annotated[float, typer.Option("--soc-max", help="Maximum SOC, %.")]
SocInitOpt = Annotated[float, typer.Option("--soc-initial", help="SOC at the start, %.")]
SocFinalOpt = Annotated[
    float | None,
    typer.Option("--soc-final", help="Minimum SOC at the end of each plan, % [initial SOC]."),
]
WearOpt = Annotated[
    float,
    typer.Option(
        "--degradation-usd-mwh",
        help="Wear cost per MWh of cell throughput, in the price file's currency.",
    ),
]
CyclesOpt = Annotated[
    float | None, typer.Option("--cycles-per-day", help="Cap on full cycles per day.")
]
MinSpreadOpt = Annotated[
    float | None,
    typer.Option(
        "--min-spread",
        help="Risk mode: a trade must earn this per MWh beyond losses and wear.",
    ),
]
MinConfidenceOpt = Annotated[
    float | None,
    typer.Option(
        "--min-confidence", help="Risk mode: hold steps whose band confidence is lower (0..1)."
    ),
]
ConservativeOpt = Annotated[
    bool,
    typer.Option(
        "--conservative", help="Risk mode: plan to buy at p90 and sell at p10.", metavar=""
    ),
]


@dataclass(frozen=True, slots=True)
class SocPlan:
    """Where each plan starts and the minimum it must end at (None: where it started), as
    given on the command line: a SOC outside 0-100 % is an input error there (a SOC measured
    outside the limits is the optimizer's reported violation, not this)."""

    initial_pct: float = 50.0
    final_pct: float | None = None

    def __post_init__(self) -> None:
        for option, value in (("--soc-initial", self.initial_pct), ("--soc-final", self.final_pct)):
            if value is not None and not 0.0 <= value <= 100.0:
                raise ConfigError(f"{option}: {value:g} % is not a state of charge (0..100 %)")


def risk_from_options(
    min_spread: float | None, min_confidence: float | None, conservative: bool
) -> Risk | None:
    """The risk-aware mode the options ask for, or None when none is given."""
    if min_spread is None and min_confidence is None and not conservative:
        return None
    return Risk(
        min_spread=min_spread or 0.0,
        min_confidence=min_confidence or 0.0,
        conservative=conservative,
    )
