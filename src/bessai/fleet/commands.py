"""`bessai fleet serve|status|query|migrate`: the fleet backend from the terminal."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bessai.errors import BessaiError

# The service's libraries (asyncpg, FastAPI, uvicorn, nats) load when a fleet command runs,
# not with every `bessai` command.
if TYPE_CHECKING:
    from bessai.fleet.settings import FleetSettings
    from bessai.fleet.store import DbOptions
    from bessai.fleet.view import FleetView

fleet_app = typer.Typer(
    help="The fleet backend: telemetry stream -> PostgreSQL -> one view of every site.",
    no_args_is_help=True,
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Fleet configuration (TOML with a \\[fleet] table)."),
]


def _settings(config: Path | None, http_port: int | None = None) -> FleetSettings:
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        raise BessaiError(
            "the fleet backend needs the fleet extra: pip install 'bessai[fleet]'"
        ) from None
    from bessai.fleet.settings import FleetSettings, load_fleet_settings

    settings = load_fleet_settings(config)
    if http_port is not None:
        fleet = settings.fleet.model_copy(update={"http_port": http_port})
        settings = FleetSettings(fleet, settings.api, settings.keys_file, settings.source)
    return settings


async def _serve(settings: FleetSettings, migrate_schema: bool, console: Console) -> None:
    from bessai.fleet.service import FleetService
    from bessai.fleet.store import redact
    from bessai.fleet.vtn import close_vtn, fleet_vtn

    vtn, routers = fleet_vtn(settings.fleet, os.environ)
    service = FleetService(settings, migrate_schema=migrate_schema, extra_routers=routers)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, service.stop_event.set)
    try:
        await service.start()
        fleet = settings.fleet
        base = f"http://{fleet.http_host}:{service.port}"
        console.print(
            f"bessai fleet: consumer {fleet.consumer!r} on stream {fleet.stream!r} at "
            f"{fleet.nats_url} -> {redact(fleet.database_url.get_secret_value())}; "
            f"API {base}/api/v1/fleet; page {base}/fleet; metrics {base}/metrics",
            markup=False,
            highlight=False,
        )
        if vtn is not None:
            console.print(f"OpenADR 3.1 VTN {base}/openadr3/3.1.0", markup=False, highlight=False)
        await service.wait()
    finally:
        await service.stop()
        if vtn is not None:
            await close_vtn(vtn)


@fleet_app.command("serve")
def serve(
    config: ConfigOpt = None,
    http_port: Annotated[
        int | None, typer.Option(help="Override fleet.http_port (0 = any free port).")
    ] = None,
    migrate_schema: Annotated[
        bool,
        typer.Option(
            "--migrate/--no-migrate",
            help="Apply missing migrations on start (default), or refuse an old schema.",
        ),
    ] = True,
) -> None:
    """Consume the telemetry stream into PostgreSQL and serve the fleet API and page. Start
    several with the same fleet.consumer: they share the stream without double writes."""
    settings = _settings(config, http_port)
    asyncio.run(_serve(settings, migrate_schema, Console(stderr=True)))


async def _migrate(options: DbOptions) -> list[str]:
    from bessai.fleet.migrations import migrate
    from bessai.fleet.store import connect

    conn = await connect(options)
    try:
        return [f"{m.version} {m.name}" for m in await migrate(conn)]
    finally:
        await conn.close()


@fleet_app.command("migrate")
def migrate_cmd(config: ConfigOpt = None) -> None:
    """Bring the fleet database's schema up to date (safe to run while services run)."""
    from bessai.fleet.migrations import latest_version
    from bessai.fleet.service import db_options

    settings = _settings(config)
    applied = asyncio.run(_migrate(db_options(settings)))
    for line in applied:
        typer.echo(f"applied migration {line}")
    typer.echo(f"fleet database at schema version {latest_version()}")


async def _load(settings: FleetSettings) -> FleetView:
    from bessai.fleet.context import limits_of
    from bessai.fleet.service import db_options
    from bessai.fleet.store import check_schema, connect
    from bessai.fleet.view import SITES_SQL, build_view

    conn = await connect(db_options(settings))
    try:
        await check_schema(conn)
        rows = await conn.fetch(SITES_SQL)
    finally:
        await conn.close()
    return build_view(rows, datetime.now(UTC), limits_of(settings.fleet))


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def status_table(view: FleetView) -> Table:
    """The sites, one row each, and the totals as the caption."""
    table = Table(show_edge=False, header_style="bold")
    for column in ("site", "state", "last seen (UTC)", "SOC %", "power kW", "kWh", "safety",
                   "alarms"):  # fmt: skip
        table.add_column(column, overflow="fold")
    for s in view.sites:
        table.add_row(
            Text(s.site_id),
            Text("STALE", style="bold red") if s.stale else Text("online", style="green"),
            s.last_seen.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            _fmt(s.soc_pct),
            _fmt(None if s.battery_power_w is None else s.battery_power_w / 1000, 2),
            _fmt(s.capacity_kwh),
            Text(s.safety_state or "-", style="bold red" if s.safety_state == "safe" else ""),
            Text("; ".join(s.alarms) or "-"),
        )
    t = view.totals
    table.caption = (
        f"{t.sites} sites, {t.sites_online} online, {t.sites_stale} stale, {t.sites_safe} in "
        f"SAFE; {t.capacity_kwh:.1f} kWh at {_fmt(t.soc_pct)} % SOC; flexibility over "
        f"{t.horizon_h:g} h: charge {t.charge_flex_kwh:.1f} kWh ({t.charge_flex_kw:.1f} kW), "
        f"discharge {t.discharge_flex_kwh:.1f} kWh ({t.discharge_flex_kw:.1f} kW)"
    )
    return table


@fleet_app.command("status")
def status(
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON, as /api/v1/fleet.")] = False,
) -> None:
    """A table of the sites (online or stale, SOC, power, safety, alarms) and the totals."""
    settings = _settings(config)
    view = asyncio.run(_load(settings))
    if as_json:
        from bessai.fleet.context import fleet_document

        typer.echo(json.dumps(fleet_document(view, settings.fleet), indent=2))
        return
    if not view.sites:
        typer.echo("the fleet has not heard from any site yet")
        return
    Console(width=max(120, Console().width)).print(status_table(view))


async def _query(
    settings: FleetSettings, sql: str, timeout_s: float
) -> tuple[list[str], list[Any]]:
    import asyncpg

    from bessai.fleet.store import DbOptions, FleetDatabaseError, connect

    fleet = settings.fleet
    dsn = (fleet.readonly_database_url or fleet.database_url).get_secret_value()
    conn = await connect(DbOptions(dsn=dsn, tls_ca_file=fleet.database_tls_ca_file))
    try:
        # Read-only whatever the role may do, and bounded in time: an analyst's typo must not
        # write, nor hold locks the consumers wait on.
        async with conn.transaction(readonly=True):
            await conn.execute(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}")
            stmt = await conn.prepare(sql)
            columns = [a.name for a in stmt.get_attributes()]
            rows = await stmt.fetch()
    except asyncpg.PostgresError as exc:
        raise FleetDatabaseError(f"query failed: {exc.__class__.__name__}: {exc}") from None
    finally:
        await conn.close()
    return columns, rows


@fleet_app.command("query")
def query(
    sql: Annotated[str, typer.Argument(help="One SQL statement (read-only).")],
    config: ConfigOpt = None,
    output: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    timeout_s: Annotated[float, typer.Option(help="Statement timeout.")] = 30.0,
) -> None:
    """Run SQL over the fleet database in a read-only transaction, as the role of
    fleet.readonly_database_url when set (give analysts a role that can only SELECT)."""
    if output not in ("table", "csv", "json"):
        raise BessaiError(f"--format {output!r}: use table, csv or json")
    columns, rows = asyncio.run(_query(_settings(config), sql, timeout_s))
    if output == "json":
        typer.echo(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str))
    elif output == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows([list(r) for r in rows])
    else:
        table = Table(show_edge=False, header_style="bold")
        for column in columns:
            table.add_column(column, overflow="fold")
        for r in rows:
            table.add_row(*(Text("" if v is None else str(v)) for v in r))
        Console().print(table)


async def _export(settings: FleetSettings, target: Any, days: list[Any]) -> list[Any]:
    from bessai.fleet.bigquery import export_day
    from bessai.fleet.service import db_options
    from bessai.fleet.store import open_pool

    pool = await open_pool(db_options(settings, max_size=1))
    try:
        return [await export_day(pool, target, day) for day in days]
    finally:
        await pool.close()


@fleet_app.command("export-bigquery")
def export_bigquery(
    project: Annotated[str, typer.Option(help="Google Cloud project of the dataset.")],
    day_from: Annotated[str, typer.Option("--from", help="First UTC day, YYYY-MM-DD.")],
    day_to: Annotated[
        str | None, typer.Option("--to", help="Last UTC day (default: --from).")
    ] = None,
    config: ConfigOpt = None,
    table: Annotated[
        str, typer.Option(help="DATASET.TABLE of the target (day-partitioned on ts).")
    ] = "bessai.envelopes",
    credentials_file: Annotated[
        Path | None, typer.Option(help="Service account key; default: ADC.")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="An emulator's URL (anonymous), e.g. http://127.0.0.1:9050.")
    ] = None,
    stage_with: Annotated[
        str, typer.Option(help="load (load jobs) or insert (streaming API, for emulators).")
    ] = "load",
) -> None:
    """Copy the fleet database's envelopes to BigQuery, one UTC day per load + MERGE;
    re-exporting a day inserts only what BigQuery lacks (dedup on site, boot, seq)."""
    from datetime import date, timedelta

    from bessai.fleet.bigquery import BigQueryTarget

    try:
        first = date.fromisoformat(day_from)
        last = date.fromisoformat(day_to) if day_to else first
    except ValueError as exc:
        raise BessaiError(f"--from/--to: {exc} (use YYYY-MM-DD)") from None
    if last < first or (last - first).days > 366:
        raise BessaiError(f"--from {first} --to {last}: give 1 to 367 days, in order")
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    if stage_with not in ("load", "insert"):
        raise BessaiError(f"--stage-with {stage_with!r}: use load or insert")
    dataset, _, table_name = table.partition(".")
    if not dataset or not table_name:
        raise BessaiError(f"--table {table!r}: write DATASET.TABLE, e.g. bessai.envelopes")
    target = BigQueryTarget(project, dataset, table_name, credentials_file=credentials_file,
                            endpoint=endpoint, stage_with=stage_with)  # fmt: skip
    for result in asyncio.run(_export(_settings(config), target, days)):
        typer.echo(
            f"{result.day}: {result.rows_read} envelopes read, {result.rows_inserted} new in "
            f"{target.ref()}"
        )


def register(app: typer.Typer) -> None:
    """Add `bessai fleet ...`."""
    app.add_typer(fleet_app, name="fleet")
