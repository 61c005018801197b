"""Command-line pieces shared by every command that reads a price file.

`bessai optimize`, `bessai backtest` and `bessai forecast ...` take the same price options and
load, report and cut the file the same way; they live here so neither command module reaches
into the other's internals.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bessai.errors import ConfigError, DataError
from bessai.market.prices import PriceSeries, load_prices
from bessai.optimize.backtest import market_days
from bessai.optimize.model import Risk

PricesOpt = Annotated[
    Path, typer.Option("--prices", help="Price file (CEN TSV/CSV, SMARD, or timestamp,price).")
]
ColumnOpt = Annotated[
    str | None,
    typer.Option("--column", help="Price column (CEN: costo_usd / costo_clp ...; SMARD: zone)."),
]
NodeOpt = Annotated[
    str | None,
    typer.Option("--node", help="Bus of a CEN file with several (nombre or mnemotecnico)."),
]
FromOpt = Annotated[
    str | None, typer.Option("--from", help="First market day (YYYY-MM-DD, local time).")
]
ToOpt = Annotated[str | None, typer.Option("--to", help="Last market day, inclusive (YYYY-MM-DD).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
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
    typer.Option("--conservative", help="Risk mode: plan to buy at p90 and sell at p10."),
]


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


def stdout_console() -> Console:
    # Off a terminal rich assumes 80 columns, which folds every reason over five lines.
    return Console() if sys.stdout.isatty() else Console(width=160)


def day_progress(err: Console, label: str) -> Progress:
    """The bar a day-by-day command shows on ``err`` while it works (``label`` may use
    ``{task.description}``); it is gone when the command prints its result."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def parse_day(text: str | None, option: str) -> date | None:
    """``text`` as a date, or an error naming ``option``."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option}: {text!r} is not a date YYYY-MM-DD") from None


def load_price_file(path: Path, column: str | None, node: str | None, err: Console) -> PriceSeries:
    """Load ``path`` and say on ``err`` what was read and what was repaired."""
    if not path.is_file():
        raise DataError(f"{path}: no such price file")
    series = load_prices(path, column=column, node=node)
    kinds: dict[str, int] = {}
    for issue in series.report.issues:
        kinds[issue.kind] = kinds.get(issue.kind, 0) + 1
    notes = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no repairs"
    said = (
        f"{path.name}: {series.report.format}, {series.node}, {len(series)} steps of "
        f"{series.step}, {series.unit}; {notes}"
    )
    err.print(
        f"[dim]{escape(said)}[/]",  # a file name such as prices[old].csv is not markup
        highlight=False,
        soft_wrap=True,
    )
    return series


def market_day_window(series: PriceSeries, first: date | None, last: date | None) -> PriceSeries:
    """The complete market days of ``series`` in ``[first, last]``."""
    if first is None and last is None:
        return series
    days = [d for d in market_days(series) if (first is None or d[0] >= first)]
    days = [d for d in days if last is None or d[0] <= last]
    if not days:
        raise ConfigError(f"no complete market day in {first or '...'} .. {last or '...'}")
    index = series.index
    return series.between(index[days[0][1]], index[days[-1][2] - 1] + series.step)
