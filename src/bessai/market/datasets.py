"""CEN datasets beyond the real CMg: `bessai market fetch --dataset NAME`.

Each dataset is one resource of CEN's public information API (SIP), fetched day by day with the
CMg fetcher's client (:class:`bessai.market.fetch.CenClient`: the same minimum interval between
requests, retries with back-off on 429/5xx honouring Retry-After, both paging shapes) into the
same kind of resumable per-day cache, and written as one long CSV::

    timestamp,key,value
    2023-03-01T03:00:00Z,solar,512.3

``timestamp`` is the UTC start of the hour (CEN's times are local, America/Santiago, converted
here), ``key`` what the value is of (a bus, a technology, a plant, a reservoir, a fuel; ``system``
for system-wide series) and ``value`` in the dataset's unit (:data:`DATASETS`). Records with
the same hour and key are summed (generation of every plant of a technology) or, for levels and
prices, averaged.

**Assumed response shapes.** No API key was available to check them against the live service:
the resource paths and field names below follow the API's published conventions (the v4
``findByDate`` resources: ``{"data": [...], "page", "limit", "totalPages"}``, times in
``fecha_hora``; or v2 pages ``{"count", "next", "previous", "results": [...]}`` with ``fecha``
and ``hora`` 1..24, the hour ending, or ``fecha`` alone for daily values). Every field has a
list of accepted names, tried in order; a record with none of them stops the fetch with a line
naming the record and the fields it has, so a renamed field is a one-line change here. The
tests serve exactly these shapes from a local server (``tests/market/test_fetch_datasets.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import typer

from bessai.errors import ConfigError, DataError
from bessai.market.features import ExogInput
from bessai.market.fetch import (
    CenClient,
    FetchError,
    _number,
    _slug,
    days_between,
    fetch_command,
    run_fetch,
    settings_from,
)
from bessai.market.prices import PriceSeries

CEN_TZ = ZoneInfo("America/Santiago")
SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Dataset:
    """One CEN resource: its path, the fields read (accepted names, in order), the unit and
    how records of the same hour and key combine (``sum`` or ``mean``)."""

    name: str
    path: str
    value_fields: tuple[str, ...]
    key_fields: tuple[str, ...]  # empty: a system-wide series
    unit: str
    combine: str
    about: str
    # When a forecaster may read a value (bessai.market.features.ExogInput): the values of local
    # day D are published by the start of day D + known_days. 0: a day-ahead series (published
    # on D-1); 1: a realised one, known once the day is over. The publication delays of CEN's
    # realised series were not checked against the live service: 1 is the earliest possible.
    known_days: int = 1


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "cmg-programmed",
            "/costo-marginal-programado/v4/findByDate",
            ("cmg_usd_mwh_", "cmg_usd_mwh", "costo_en_dolares"),
            ("barra_transf", "barra", "barra_mnemotecnico", "nombre"),
            "USD/MWh",
            "mean",
            "programmed (day-ahead) marginal cost per bus: the operator's own forecast",
            known_days=0,
        ),
        Dataset(
            "generation",
            "/generacion-real/v3/findByDate",
            ("generacion_real_mwh", "generacion_mwh", "generacion"),
            ("tipo_tecnologia", "tecnologia", "tipo_central"),
            "MWh",
            "sum",
            "real generation per technology (every plant of a technology summed)",
        ),
        Dataset(
            "generation-plant",
            "/generacion-real/v3/findByDate",
            ("generacion_real_mwh", "generacion_mwh", "generacion"),
            ("nombre_central", "central", "id_central"),
            "MWh",
            "sum",
            "real generation per plant",
        ),
        Dataset(
            "renewables",
            "/generacion-ernc/v1/findByDate",
            ("generacion_mwh", "generacion"),
            ("tipo_tecnologia", "tecnologia", "tipo_central"),
            "MWh",
            "sum",
            "non-conventional renewable (ERNC) generation per technology",
        ),
        Dataset(
            "demand",
            "/demanda-real/v2/findByDate",
            ("demanda_mwh", "demanda_real_mwh", "demanda"),
            (),
            "MWh",
            "sum",
            "real system demand",
        ),
        Dataset(
            "hydro",
            "/cota-embalses/v1/findByDate",
            ("cota_msnm", "cota"),
            ("nombre_embalse", "embalse"),
            "m a.s.l.",
            "mean",
            "reservoir levels (hydro conditions)",
        ),
        Dataset(
            "fuels",
            "/precio-combustibles/v1/findByDate",
            ("precio_usd", "precio"),
            ("combustible", "tipo_combustible"),
            "USD per fuel unit",
            "mean",
            "fuel prices declared for dispatch",
        ),
        Dataset(
            "capacity",
            "/capacidad-instalada/v1/findByDate",
            ("potencia_neta_mw", "capacidad_mw", "potencia_mw"),
            ("tipo_tecnologia", "tecnologia", "tipo_central"),
            "MW",
            "sum",
            "installed net capacity per technology",
        ),
        Dataset(
            "emissions",
            "/emisiones/v1/findByDate",
            ("emisiones_tco2", "co2_ton", "emisiones"),
            ("tipo_tecnologia", "tecnologia", "nombre_central", "central"),
            "t CO2",
            "sum",
            "CO2 emissions per technology (or plant)",
        ),
    )
}


def dataset(name: str) -> Dataset:
    """The dataset called ``name``; an unknown one is a one-line error listing them."""
    if name not in DATASETS:
        raise ConfigError(f"--dataset {name!r}: choose cmg or one of {', '.join(DATASETS)}")
    return DATASETS[name]


def _field(record: dict[str, Any], names: tuple[str, ...], what: str, where: str) -> Any:
    for name in names:
        if name in record and record[name] is not None:
            return record[name]
    have = ", ".join(sorted(record))
    raise FetchError(f"{where}: no {what} field ({' or '.join(names)}); the record has: {have}")


def _local_hour(record: dict[str, Any], where: str) -> datetime:
    """The local start of the hour (or day) a record is for."""
    if "fecha_hora" in record:
        text = str(record["fecha_hora"])[:16].replace("T", " ")
        try:
            return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(minute=0)
        except ValueError:
            raise FetchError(
                f"{where}: fecha_hora {record['fecha_hora']!r} is not a time"
            ) from None
    day_text = str(_field(record, ("fecha",), "time", where))[:10]
    try:
        day = datetime.strptime(day_text, "%Y-%m-%d")
    except ValueError:
        raise FetchError(f"{where}: fecha {day_text!r} is not a date") from None
    if "hora" not in record:
        return day  # a daily value, held from midnight
    try:
        hour = int(record["hora"])
    except (TypeError, ValueError):
        raise FetchError(f"{where}: hora {record['hora']!r} is not an hour") from None
    return day + timedelta(hours=hour - 1)  # `hora` is the hour ending, 1..24 (25)


def to_utc(local: datetime) -> datetime:
    """A naive America/Santiago time in UTC (the first of a repeated hour)."""
    return local.replace(tzinfo=CEN_TZ).astimezone(ZoneInfo("UTC"))


def row_of(ds: Dataset, record: dict[str, Any], where: str) -> tuple[str, str, float]:
    """(UTC ISO hour start, key, value) of one record."""
    key = SYSTEM if not ds.key_fields else str(_field(record, ds.key_fields, "key", where))
    value = _number(_field(record, ds.value_fields, "value", where), where)
    stamp = to_utc(_local_hour(record, where)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return stamp, key.strip(), value


@dataclass(frozen=True, slots=True)
class DatasetPlan:
    """The days wanted for ``dataset`` (only ``key`` when given), those already cached, the
    cache directory and the output CSV."""

    dataset: Dataset
    key: str | None
    days: list[date]
    cached: list[date]
    cache_dir: Path
    output: Path

    @property
    def missing(self) -> list[date]:
        have = set(self.cached)
        return [d for d in self.days if d not in have]


def plan_dataset(ds: Dataset, key: str | None, first: date, last: date, out: Path) -> DatasetPlan:
    """What fetching ``ds`` from ``first`` to ``last`` into ``out`` will do."""
    part = ds.name if key is None else f"{ds.name}_{_slug(key)}"
    cache = out / ".cache" / part
    days = days_between(first, last)
    cached = [d for d in days if (cache / f"{d.isoformat()}.json").is_file()]
    output = out / f"cen_{part.replace('-', '_')}_{first.isoformat()}_{last.isoformat()}.csv"
    return DatasetPlan(ds, key, days, cached, cache, output)


def _combined(rows: list[tuple[str, str, float]], combine: str) -> list[list[object]]:
    """One row per (hour, key): the records' sum or mean."""
    groups: dict[tuple[str, str], list[float]] = {}
    for stamp, key, value in rows:
        groups.setdefault((stamp, key), []).append(value)
    op: Callable[[list[float]], float] = sum if combine == "sum" else (lambda v: sum(v) / len(v))
    return [[s, k, op(v)] for (s, k), v in sorted(groups.items())]


def fetch_dataset(
    plan: DatasetPlan, client: CenClient, *, on_day: Callable[[int, int], None] | None = None
) -> Path:
    """Download the plan's missing days into the cache (each day whole or not at all), then
    write the CSV."""
    ds = plan.dataset
    plan.cache_dir.mkdir(parents=True, exist_ok=True)
    want = None if plan.key is None else plan.key.strip().casefold()
    missing = plan.missing
    for k, day in enumerate(missing):
        rows = []
        for page, i, rec in client.records(day, ds.path):
            row = row_of(ds, rec, f"{ds.name} {day} page {page} record {i}")
            if want is None or row[1].casefold() == want:
                rows.append(row)
        if not rows:
            what = "" if plan.key is None else f" for {plan.key!r}"
            raise FetchError(f"{ds.name} {day}: the API has no record{what}")
        path = plan.cache_dir / f"{day.isoformat()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(_combined(rows, ds.combine)), encoding="utf-8")
        tmp.replace(path)
        if on_day is not None:
            on_day(k + 1, len(missing))
    return write_csv(plan)


def write_csv(plan: DatasetPlan) -> Path:
    """The cached days as one ``timestamp,key,value`` CSV, in time order."""
    lines = ["timestamp,key,value"]
    for day in plan.days:
        rows = json.loads((plan.cache_dir / f"{day.isoformat()}.json").read_text("utf-8"))
        for stamp, key, value in rows:
            # Keys are CEN's names; quote any that holds a comma or a quote.
            cell = f'"{key.replace(chr(34), chr(34) * 2)}"' if ("," in key or '"' in key) else key
            lines.append(f"{stamp},{cell},{float(value)!r}")
    plan.output.parent.mkdir(parents=True, exist_ok=True)
    plan.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return plan.output


def load_dataset_csv(path: Path) -> pd.DataFrame:
    """A fetched dataset as a wide frame: UTC hour starts by key (one column per key)."""
    try:
        long = pd.read_csv(path, dtype={"key": str})
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the dataset ({exc})") from None
    if list(long.columns) != ["timestamp", "key", "value"]:
        raise DataError(f"{path}:1: expected header 'timestamp,key,value'")
    long["timestamp"] = pd.to_datetime(long["timestamp"], utc=True)
    wide = long.pivot_table(index="timestamp", columns="key", values="value", aggfunc="mean")
    wide.columns = [str(c) for c in wide.columns]
    return wide.astype(np.float64)


def _held(series: pd.Series, index: pd.DatetimeIndex) -> pd.Series:
    """``series`` (one key, NaN dropped) read at each step of ``index``: the last value at or
    before the step while it is younger than the series' own period (an hourly value covers
    its hour, a daily one its day); NaN before the first value, in a gap and after the last."""
    out = np.full(len(index), np.nan)
    if series.empty:
        return pd.Series(out, index=index)
    stamps = pd.DatetimeIndex(series.index)
    period = pd.Timedelta(hours=1)
    if len(stamps) > 1:
        gaps = pd.Series(stamps[1:] - stamps[:-1])
        period = max(period, pd.Timedelta(gaps.median()))
    if period >= pd.Timedelta(hours=20):
        period = pd.Timedelta(hours=25)  # a daily value, and its day may have 25 hours
    pos = stamps.searchsorted(index, side="right") - 1
    ok = pos >= 0
    age = index - stamps[np.clip(pos, 0, None)]
    ok &= np.asarray(age < period)
    out[ok] = series.to_numpy(dtype=np.float64)[pos[ok]]
    return pd.Series(out, index=index)


def exog_frame(
    wide: pd.DataFrame, index: pd.DatetimeIndex, columns: dict[str, str]
) -> pd.DataFrame:
    """Exogenous forecaster inputs from a fetched dataset: ``columns`` maps an input name to a
    key of ``wide``, read at each step of ``index`` (a value covers its own hour, or its day
    for a daily series; NaN where the dataset has no value). The frame holds values of every
    time; the features read only those published by each issue time."""
    out = {}
    for name, key in columns.items():
        if key not in wide.columns:
            raise DataError(f"exogenous input {name}: the dataset has no key {key!r}")
        out[name] = _held(wide[key].dropna(), index)
    return pd.DataFrame(out, index=index)


@dataclass(frozen=True, slots=True)
class ExogSource:
    """An exogenous input as a user names it: ``name``, a CSV from `bessai market fetch
    --dataset` and the key to read (None: the file's only key); ``where`` names the option or
    config key it came from, for messages."""

    name: str
    file: Path
    key: str | None = None
    where: str = "--exog"

    @classmethod
    def parse(cls, text: str, where: str = "--exog") -> ExogSource:
        """``NAME=FILE[:KEY]`` (the option's form)."""
        name, sep, rest = text.partition("=")
        if not sep or not name or not rest:
            raise ConfigError(f"{where} {text!r}: expected NAME=FILE[:KEY]")
        file, key = rest, None
        if ":" in rest and not Path(rest).is_file():
            file, _, key = rest.rpartition(":")
        return cls(name.strip(), Path(file), key or None, f"{where} {name.strip()}")


def dataset_of_file(path: Path) -> Dataset:
    """The dataset a fetched CSV holds, from the name `bessai market fetch` gave it
    (``cen_<dataset>[_<key>]_<from>_<to>.csv``)."""
    stem = path.name
    for ds in sorted(DATASETS.values(), key=lambda d: -len(d.name)):
        if stem.startswith(f"cen_{ds.name.replace('-', '_')}_"):
            return ds
    raise DataError(
        f"{path}: cannot tell the dataset from the file name; keep the name bessai market fetch "
        "--dataset gives it (cen_<dataset>_..._<from>_<to>.csv)"
    )


def _key_of(source: ExogSource, wide: pd.DataFrame) -> str:
    """The key of ``wide`` the source asks for (exact, else the one equal ignoring case)."""
    keys = list(wide.columns)
    shown = ", ".join(repr(k) for k in keys[:12]) + (" ..." if len(keys) > 12 else "")
    if source.key is None:
        if len(keys) == 1:
            return keys[0]
        raise DataError(
            f"{source.where}: {source.file.name} holds {len(keys)} keys; name one as "
            f"NAME=FILE:KEY ({shown})"
        )
    if source.key in keys:
        return source.key
    folded = [k for k in keys if k.casefold() == source.key.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    raise DataError(f"{source.where}: {source.file.name} has no key {source.key!r} ({shown})")


def load_exog(
    sources: list[ExogSource],
    index: pd.DatetimeIndex,
    reader: Callable[[Path], pd.DataFrame] = load_dataset_csv,
) -> tuple[tuple[ExogInput, ...], pd.DataFrame]:
    """The exogenous inputs ``sources`` name (with their dataset's publication rule) and
    their values laid on ``index``; ``reader`` reads a file (the gateway's caches them)."""
    inputs: list[ExogInput] = []
    frames: list[pd.DataFrame] = []
    for src in sources:
        if not src.file.is_file():
            raise DataError(
                f"{src.where}: {src.file}: no such file (write it with bessai market fetch "
                "--dataset NAME)"
            )
        ds = dataset_of_file(src.file)
        wide = reader(src.file)
        key = _key_of(src, wide)
        try:
            inputs.append(ExogInput(src.name, ds.known_days, ds.name, key))
        except DataError as exc:
            raise DataError(f"{src.where}: {exc}") from None
        frames.append(exog_frame(wide, index, {src.name: key}))
    names = [e.name for e in inputs]
    if len(set(names)) != len(names):
        raise DataError(f"--exog: an input is named twice ({', '.join(names)})")
    frame = pd.concat(frames, axis=1) if frames else pd.DataFrame(index=index)
    return tuple(inputs), frame


def exog_index(series: PriceSeries, issue: pd.Timestamp, horizon: int) -> pd.DatetimeIndex:
    """The steps a forecast from the prices of ``series`` issued at ``issue`` may read an
    exogenous value at: the prices' grid, through the end of the horizon."""
    end = max(series.index[-1], issue.tz_convert("UTC")) + (horizon + 1) * series.step
    return pd.date_range(series.index[0], end, freq=series.step)


def model_exog(
    needed: tuple[ExogInput, ...],
    sources: list[ExogSource],
    index: pd.DatetimeIndex,
    how: str = "give --exog NAME=FILE[:KEY]",
    reader: Callable[[Path], pd.DataFrame] = load_dataset_csv,
) -> pd.DataFrame | None:
    """The exogenous frame for a model that reads ``needed`` (its card's inputs), from the
    files ``sources`` name, laid on ``index`` (None: the model reads none). A source without a
    key reads the card's; a file of another dataset or key than the model was trained on, an
    input the model does not read and one it reads but nobody gave are errors; ``how`` says
    how to give one."""
    by_name = {s.name: s for s in sources}
    wanted = {e.name for e in needed}
    for name, src in by_name.items():
        if name not in wanted:
            reads = ", ".join(sorted(wanted)) or "none"
            raise DataError(f"{src.where}: the model reads no input {name!r} (it reads: {reads})")
    missing = [e for e in needed if e.name not in by_name]
    if missing:
        what = "; ".join(f"{e.name} (dataset {e.dataset or '?'}, key {e.key or '?'})"
                         for e in missing)  # fmt: skip
        raise DataError(f"the model needs the exogenous input(s) {what}: {how}")
    if not needed:
        return None
    resolved = []
    for e in needed:
        src = by_name[e.name]
        resolved.append(src if src.key is not None or not e.key else replace(src, key=e.key))
    inputs, frame = load_exog(resolved, index, reader)
    for got, want, src in zip(inputs, needed, resolved, strict=True):
        if want.dataset and got.dataset != want.dataset:
            raise DataError(
                f"{src.where}: {src.file.name} holds {got.dataset}; the model was trained on "
                f"{want.dataset}"
            )
        if want.key and got.key != want.key:
            raise DataError(f"{src.where}: key {got.key!r}; the model was trained on {want.key!r}")
    return frame


def fetch_any_command(
    first: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD).")],
    last: Annotated[str, typer.Option("--to", help="Last day, inclusive (YYYY-MM-DD).")],
    dataset_name: Annotated[
        str,
        typer.Option(
            "--dataset",
            help=f"cmg (real marginal cost of --node) or one of: {', '.join(DATASETS)}.",
        ),
    ] = "cmg",
    node: Annotated[
        str | None,
        typer.Option("--node", help="Bus (cmg, cmg-programmed): barra_mnemotecnico or nombre."),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", help="Keep only this key (technology, plant, reservoir, fuel)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Output directory (and cache).")] = Path(
        "cen-data"
    ),
    config: Annotated[
        Path | None, typer.Option("--config", help="Deployment TOML with \\[market].")
    ] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="API base URL.")] = None,
    min_interval_s: Annotated[
        float | None, typer.Option("--min-interval-s", help="Seconds between requests [1].")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; download nothing.", metavar="")
    ] = False,
) -> None:
    """Download CEN data into a file (resumable): the real CMg of one bus (TSV), or another
    dataset (CSV timestamp,key,value; docs/forecast.md)."""
    options = FetchOptions(config, base_url, min_interval_s, dry_run)
    if dataset_name == "cmg":
        if node is None:
            raise ConfigError("--node is required for --dataset cmg (the bus to download)")
        fetch_command(node, first, last, out, *options.as_args())
        return
    ds = dataset(dataset_name)
    try:
        d0, d1 = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError as exc:
        raise ConfigError(f"--from/--to: {exc}") from None
    plan = plan_dataset(ds, key if key is not None else node, d0, d1, out)
    run_dataset(plan, options)


@dataclass(frozen=True, slots=True)
class FetchOptions:
    """The connection and dry-run options every dataset shares."""

    config: Path | None
    base_url: str | None
    min_interval_s: float | None
    dry_run: bool

    def as_args(self) -> tuple[Path | None, str | None, float | None, bool]:
        return self.config, self.base_url, self.min_interval_s, self.dry_run


def run_dataset(plan: DatasetPlan, options: FetchOptions) -> None:
    """Print the plan (dry run) or fetch it with a progress bar."""
    settings = settings_from(
        options.config, base_url=options.base_url, min_interval_s=options.min_interval_s
    )
    if options.dry_run:
        doc = {
            "dataset": plan.dataset.name,
            "key": plan.key,
            "unit": plan.dataset.unit,
            "url": settings.base_url.rstrip("/") + plan.dataset.path,
            "days": len(plan.days),
            "cached_days": len(plan.cached),
            "days_to_fetch": len(plan.missing),
            "min_requests": len(plan.missing),
            "min_duration_s": len(plan.missing) * settings.min_interval_s,
            "api_key": "set" if settings.api_key else "MISSING",
            "cache": str(plan.cache_dir),
            "output": str(plan.output),
        }
        typer.echo(json.dumps(doc, indent=1))
        return
    run_fetch(
        settings, f"CEN {plan.dataset.name}", (len(plan.missing), len(plan.cached)),
        lambda client, on_day: fetch_dataset(plan, client, on_day=on_day),
    )  # fmt: skip
