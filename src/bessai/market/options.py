"""Command-line pieces shared by every command that reads a price file.

`bessai optimize`, `bessai backtest`, `bessai forecast ...` and `bessai market fetch` take the
same price options and load, report and cut the file the same way. They live in the lowest
package that needs them (market), so the optimizer's and the analysis commands can use them
without the packages importing each other.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bessai.errors import ConfigError, DataError
from bessai.market.prices import PriceSeries, load_prices, market_days

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
StepMinOpt = Annotated[int | None, typer.Option("--step-min", help="Resample first.")]


def parse_day(text: str | None, option: str) -> date | None:
    """``text`` as a date, or an error naming ``option``."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option}: {text!r} is not a date YYYY-MM-DD") from None


@dataclass(frozen=True, slots=True)
class PriceSource:
    """Where the prices come from and which market days a command works on."""

    path: Path
    column: str | None = None
    node: str | None = None
    first: date | None = None
    last: date | None = None
    step_min: int | None = None  # upsample to this step (minutes) after loading

    @classmethod
    def from_options(
        cls,
        path: Path,
        column: str | None,
        node: str | None,
        first: str | None = None,
        last: str | None = None,
        step_min: int | None = None,
    ) -> PriceSource:
        """The source the command-line options describe (dates checked here)."""
        first_day, last_day = parse_day(first, "--from"), parse_day(last, "--to")
        return cls(path, column, node, first_day, last_day, step_min)

    def load(self, err: Console) -> PriceSeries:
        """The whole file at the wanted step, with what was read and repaired said on
        ``err``."""
        return self._with_step(load_price_file(self.path, self.column, self.node, err))

    def load_window(self, err: Console) -> PriceSeries:
        """The complete market days in ``[first, last]`` (the whole file without them), at the
        wanted step."""
        series = load_price_file(self.path, self.column, self.node, err)
        return self._with_step(market_day_window(series, self.first, self.last))

    def _with_step(self, series: PriceSeries) -> PriceSeries:
        if self.step_min is None or timedelta(minutes=self.step_min) == series.step:
            return series
        try:
            return series.resample(timedelta(minutes=self.step_min))
        except ValueError as exc:
            raise ConfigError(f"--step-min {self.step_min}: {exc}") from None


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
