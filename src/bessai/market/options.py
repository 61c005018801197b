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
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from bessai.errors import ConfigError, DataError
from bessai.market.prices import (
    DEFAULT_MAX_GAP_H,
    PriceSeries,
    check_timezone,
    load_prices,
    market_days,
)

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
# metavar="": a flag takes no value, and typer would otherwise show it as "<bool>".
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.", metavar="")]
StepMinOpt = Annotated[int | None, typer.Option("--step-min", help="Resample first.")]
TzOpt = Annotated[
    str | None,
    typer.Option(
        "--tz",
        help="Market time zone of a generic timestamp,price file (IANA name): where its market "
        "days start [UTC]. CEN and SMARD files fix their own.",
    ),
]
MaxGapOpt = Annotated[
    float,
    typer.Option(
        "--max-gap-h",
        help="Longest run of missing prices filled by interpolation, hours; longer gaps stay "
        "without prices and the days they touch are not scored.",
    ),
]


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
    """Where the prices come from, how they are read, and which market days a command works
    on."""

    path: Path
    column: str | None = None
    node: str | None = None
    first: date | None = None
    last: date | None = None
    step_min: int | None = None  # upsample to this step (minutes) after loading
    tz: str | None = None  # a generic file's market time zone (None: UTC)
    max_gap_h: float = DEFAULT_MAX_GAP_H

    @classmethod
    def from_options(
        cls,
        path: Path,
        column: str | None,
        node: str | None,
        first: str | None = None,
        last: str | None = None,
        *,
        step_min: int | None = None,
        tz: str | None = None,
        max_gap_h: float = DEFAULT_MAX_GAP_H,
    ) -> PriceSource:
        """The source the command-line options describe (dates and limits checked here)."""
        first_day, last_day = parse_day(first, "--from"), parse_day(last, "--to")
        if first_day is not None and last_day is not None and last_day < first_day:
            raise ConfigError(f"--to {last_day} is before --from {first_day}")
        if not max_gap_h >= 0:
            raise ConfigError(f"--max-gap-h: {max_gap_h:g} is not a number of hours >= 0")
        if tz is not None:
            try:
                check_timezone(tz)
            except ConfigError as exc:
                raise ConfigError(f"--tz: {exc}") from None
        return cls(path, column, node, first_day, last_day, step_min, tz, max_gap_h)

    def load(self, err: Console) -> PriceSeries:
        """The whole file at the wanted step, with what was read and repaired said on
        ``err``."""
        return self._with_step(self._read(err))

    def load_window(self, err: Console) -> PriceSeries:
        """The complete market days in ``[first, last]`` (the whole file without them), at the
        wanted step."""
        return self._with_step(market_day_window(self._read(err), self.first, self.last))

    def _read(self, err: Console) -> PriceSeries:
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such price file")
        try:
            series = load_prices(
                self.path,
                column=self.column,
                node=self.node,
                tz=self.tz,
                max_gap_h=self.max_gap_h,
            )
        except ConfigError as exc:
            raise ConfigError(f"--tz: {exc}") from None
        report_load(series, self.path, err)
        return series

    def _with_step(self, series: PriceSeries) -> PriceSeries:
        if self.step_min is None or timedelta(minutes=self.step_min) == series.step:
            return series
        try:
            return series.resample(timedelta(minutes=self.step_min))
        except ValueError as exc:
            raise ConfigError(f"--step-min {self.step_min}: {exc}") from None


def stdout_console() -> Console:
    # Off a terminal rich assumes 80 columns, which folds every reason over five lines.
    """A rich console on stdout that prints plain text when stdout is not a terminal."""
    return Console() if sys.stdout.isatty() else Console(width=160)


def day_progress(err: Console, label: str) -> Progress:
    """The bar a day-by-day command shows on ``err`` while it works (``label`` may use
    ``{task.description}``), with the time left; it is gone when the command prints its
    result."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def stage_progress(err: Console, label: str) -> Progress:
    """The bar a command working in stages shows on ``err``: ``label``, the stage (the task's
    description), the steps done, elapsed time and the time left."""
    return Progress(
        TextColumn(f"{escape(label)}:"),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def report_load(series: PriceSeries, path: Path, err: Console) -> None:
    """Say on ``err`` what was read, what was repaired and which gaps were left out."""
    kinds: dict[str, int] = {}
    for issue in series.report.issues:
        kinds[issue.kind] = kinds.get(issue.kind, 0) + 1
    notes = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no repairs"
    said = (
        f"{path.name}: {series.report.format}, {series.node}, {len(series)} steps of "
        f"{series.step}, {series.unit}, days in {series.timezone}; {notes}"
    )
    # escape: a file name such as prices[old].csv is not markup
    err.print(f"[dim]{escape(said)}[/]", highlight=False, soft_wrap=True)
    for issue in series.report.of_kind("gap-left-out"):
        err.print(f"[yellow]{escape(issue.message)}[/]", highlight=False, soft_wrap=True)


def market_day_window(series: PriceSeries, first: date | None, last: date | None) -> PriceSeries:
    """The steps from the first to the last complete market day of ``series`` in ``[first,
    last]`` (days left out for a gap in between stay in, without prices)."""
    if first is None and last is None:
        return series
    days = [d for d in market_days(series) if (first is None or d[0] >= first)]
    days = [d for d in days if last is None or d[0] <= last]
    if not days:
        raise ConfigError(f"no complete market day in {first or '...'} .. {last or '...'}")
    index = series.index
    return series.between(index[days[0][1]], index[days[-1][2] - 1] + series.step)
