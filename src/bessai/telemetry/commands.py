"""Telemetry commands: `bessai lake query` and `bessai tail`."""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from bessai.errors import TelemetryError
from bessai.telemetry.lake import QueryResult, query_lake
from bessai.telemetry.tail import CONNECT_ATTEMPTS, TailTarget, report_json, run_tail


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def register(app: typer.Typer, configured_lake: Callable[[Path | None], Path]) -> None:
    """Add `lake query` and `tail`; `configured_lake` finds a configuration's lake (the CLI
    passes it in, so this package does not load the gateway's configuration itself)."""
    _register_lake(app, configured_lake)
    _register_tail(app)


def _print_result(result: QueryResult, output: OutputFormat) -> None:
    if output is OutputFormat.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows([[_plain(v) for v in row] for row in result.rows])
    elif output is OutputFormat.json:
        docs = [
            {c: _plain(v) for c, v in zip(result.columns, row, strict=True)} for row in result.rows
        ]
        typer.echo(json.dumps(docs, indent=2))
    else:
        # Plain text cells: stored values (and the query's column names) are shown as they
        # are, never as rich markup or emoji codes ('1:x:2' stays '1:x:2').
        table = Table(*(Column(Text(c), overflow="fold") for c in result.columns))
        for row in result.rows:
            table.add_row(*(Text("" if v is None else str(_plain(v))) for v in row))
        Console().print(table)


def _register_lake(app: typer.Typer, configured_lake: Callable[[Path | None], Path]) -> None:
    lake_app = typer.Typer(
        help="The Parquet telemetry lake (`site=<id>/date=<day>/*.parquet`).",
        no_args_is_help=True,
    )

    @lake_app.command("query")
    def lake_query(
        sql: Annotated[
            str,
            typer.Argument(
                help="DuckDB SQL over the views `telemetry` (one row per site_id, seq) "
                "and `telemetry_raw` (every stored row)."
            ),
        ],
        lake: Annotated[
            Path | None,
            typer.Option(
                "--lake",
                help="Lake directory. Default: the lake sink's path of the configuration.",
            ),
        ] = None,
        config: Annotated[
            Path | None,
            typer.Option(
                "--config", "-c", help="Gateway configuration. Default: the embedded default."
            ),
        ] = None,
        output: Annotated[
            OutputFormat, typer.Option("--format", help="Output format.")
        ] = OutputFormat.table,
    ) -> None:
        """Run DuckDB SQL over the Parquet lake."""
        result = query_lake(lake if lake is not None else configured_lake(config), sql)
        _print_result(result, output)

    app.add_typer(lake_app, name="lake")


def _register_tail(app: typer.Typer) -> None:
    @app.command("tail")
    def tail(
        mqtt: Annotated[
            str | None, typer.Option("--mqtt", help="mqtt\\[s]://\\[user:pass@]host\\[:port]")
        ] = None,
        nats_url: Annotated[
            str | None, typer.Option("--nats", help="nats://[user:pass@]host[:port]")
        ] = None,
        check: Annotated[
            bool,
            typer.Option(
                "--check", help="Verify seq continuity per site; exit 1 on an unfilled gap."
            ),
        ] = False,
        count: Annotated[
            int | None, typer.Option("--count", min=1, help="Stop after N envelopes.")
        ] = None,
        duration_s: Annotated[
            float | None, typer.Option("--duration-s", min=0, help="Stop after S seconds.")
        ] = None,
        stream: Annotated[
            str | None,
            typer.Option(
                "--stream", help="NATS only: replay this JetStream stream from its start."
            ),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print raw JSON.")] = False,
        retry: Annotated[
            bool,
            typer.Option(
                "--retry",
                help="Keep trying to reach the broker (and to reconnect) instead of giving up "
                f"after {CONNECT_ATTEMPTS} attempts.",
            ),
        ] = False,
        topic_prefix: Annotated[str, typer.Option(help="MQTT topic prefix.")] = "bessai/v1",
        subject_prefix: Annotated[str, typer.Option(help="NATS subject prefix.")] = "bessai.v1",
    ) -> None:
        """Subscribe to MQTT or NATS and print envelopes (Ctrl-C to stop)."""
        if (mqtt is None) == (nats_url is None):
            raise TelemetryError("tail needs exactly one of --mqtt URL or --nats URL")
        if stream is not None and nats_url is None:
            raise TelemetryError("--stream applies to --nats only")
        target = (
            TailTarget("mqtt", mqtt) if mqtt is not None else TailTarget("nats", nats_url or "")
        )
        coro = run_tail(
            target,
            check=check,
            count=count,
            duration_s=duration_s,
            as_json=as_json,
            echo=typer.echo,
            topic_prefix=topic_prefix,
            subject_prefix=subject_prefix,
            stream=stream,
            on_ready=lambda msg: typer.echo(f"# {msg}", err=True),
            retry=retry,
        )
        try:
            checker = asyncio.run(coro)
        except KeyboardInterrupt:
            # Ctrl-C ends a tail; a --check run has nothing reliable to report then.
            raise typer.Exit(130) from None
        if check:
            typer.echo(report_json(checker))
            if not checker.ok:
                raise typer.Exit(1)
