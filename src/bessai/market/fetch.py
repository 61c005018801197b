"""Downloading the CEN real marginal cost (resource ``costoMarBar``) for one bus.

The CEN public information API (SIP, https://sipub.api.coordinador.cl) answers a date range
with pages of records for every bus; it does not filter by bus on the server, so each day is
fetched page by page and filtered here. Two answer shapes are accepted (docs/forecast.md):

- v2 ``costoMarBar``: ``{"count", "next", "previous", "results": [{"barra_mnemotecnico",
  "barra_referencia_mnemotecnico", "fecha", "hora", "costo_en_dolares", "costo_en_pesos",
  "nombre"}]}``, paged by the ``next`` link; the fields of CEN's TSV download;
- v4 ``costo-marginal-real/v4/findByDate``: ``{"data": [{"fecha_hora", "barra_transf",
  "cmg_usd_mwh_", "cmg_clp_kwh_"}], "page", "limit", "totalPages"}`` with decimal commas.

Each finished day is written to ``<out>/.cache/<bus>/<date>.json`` (atomically), so an
interrupted download resumes at the first missing day. The result is one TSV in the CEN
download format, which :func:`bessai.market.prices.load_prices` reads.
"""

from __future__ import annotations

import json
import os
import re
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from bessai.errors import BessaiError, ConfigError
from bessai.market.options import day_progress

DEFAULT_BASE_URL = "https://sipub.api.coordinador.cl"
DEFAULT_PATH = "/costo-marginal-real/v4/findByDate"
ENV_KEY = "BESSAI_CEN_API_KEY"
ENV_BASE_URL = "BESSAI_CEN_BASE_URL"
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
TSV_COLUMNS = (
    "barra_mnemotecnico",
    "barra_referencia_mnemotecnico",
    "fecha",
    "hora",
    "costo_en_dolares",
    "costo_en_pesos",
    "nombre",
)


class FetchError(BessaiError):
    """The CEN API could not be read (after retries) or answered something unexpected."""


@dataclass(frozen=True, slots=True)
class FetchSettings:
    api_key: str | None = None
    base_url: str = DEFAULT_BASE_URL
    path: str = DEFAULT_PATH
    page_limit: int = 5000
    min_interval_s: float = 1.0  # at most one request a second: the API answers 429 beyond
    retries: int = 5
    backoff_s: float = 2.0
    backoff_max_s: float = 60.0
    timeout_s: float = 60.0


def settings_from(
    config: Path | None, environ: dict[str, str] | None = None, **overrides: Any
) -> FetchSettings:
    """``[market]`` of the deployment file (``cen_api_key``, ``cen_base_url``), then the
    ``BESSAI_CEN_*`` variables, then explicit overrides (command-line options)."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    if config is not None:
        try:
            table = tomllib.loads(config.read_text(encoding="utf-8")).get("market", {})
        except OSError as exc:
            raise ConfigError(f"cannot read configuration {config}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration {config} is not valid TOML: {exc}") from None
        for key, field_name in (("cen_api_key", "api_key"), ("cen_base_url", "base_url")):
            if key in table:
                if not isinstance(table[key], str):
                    raise ConfigError(f"{config}: market.{key} must be a string")
                values[field_name] = table[key]
    if env.get(ENV_KEY):
        values["api_key"] = env[ENV_KEY]
    if env.get(ENV_BASE_URL):
        values["base_url"] = env[ENV_BASE_URL]
    values.update({k: v for k, v in overrides.items() if v is not None})
    return FetchSettings(**values)


def _number(value: object, where: str) -> float:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace(".", "").replace(",", ".") if "," in value else value)
        except ValueError:
            pass
    raise FetchError(f"{where}: {value!r} is not a price")


def normalise(record: dict[str, Any], where: str) -> dict[str, object]:
    """One API record in the TSV's fields (``hora`` 1..25, the hour ending)."""
    try:
        if "fecha_hora" in record:
            stamp = datetime.strptime(str(record["fecha_hora"])[:16], "%Y-%m-%d %H:%M")
            if stamp.minute:
                raise FetchError(f"{where}: only hourly records are supported, got {stamp}")
            bus = str(record["barra_transf"])
            return {
                "barra_mnemotecnico": bus,
                "barra_referencia_mnemotecnico": "-",
                "fecha": stamp.date().isoformat(),
                "hora": stamp.hour + 1,
                "costo_en_dolares": _number(record["cmg_usd_mwh_"], where),
                "costo_en_pesos": _number(record["cmg_clp_kwh_"], where),
                "nombre": bus,
            }
        return {
            "barra_mnemotecnico": str(record["barra_mnemotecnico"]),
            "barra_referencia_mnemotecnico": str(
                record.get("barra_referencia_mnemotecnico") or "-"
            ),
            "fecha": str(record["fecha"])[:10],
            "hora": int(record["hora"]),
            "costo_en_dolares": _number(record["costo_en_dolares"], where),
            "costo_en_pesos": _number(record["costo_en_pesos"], where),
            "nombre": str(record.get("nombre") or record["barra_mnemotecnico"]),
        }
    except KeyError as exc:
        raise FetchError(f"{where}: record lacks the field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise FetchError(f"{where}: malformed record ({exc})") from None


def _matches(record: dict[str, object], node: str) -> bool:
    want = node.strip().casefold()
    return any(str(record[k]).strip().casefold() == want for k in ("barra_mnemotecnico", "nombre"))


def _slug(node: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", node).strip("_").lower() or "node"


def days_between(first: date, last: date) -> list[date]:
    """Every day from `first` to `last`, inclusive."""
    if last < first:
        raise ConfigError(f"--to {last} is before --from {first}")
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


class CenClient:
    """Paged GETs with a minimum interval between requests and retries with exponential
    back-off on 429 (honouring Retry-After), 5xx and transport errors."""

    def __init__(
        self,
        settings: FetchSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not settings.api_key:
            raise ConfigError(
                f"CEN API key missing: set [market] cen_api_key in the configuration or {ENV_KEY}"
            )
        self.settings = settings
        self._sleep = sleep
        self._clock = clock
        self._last = -1e18
        self.requests = 0
        self.retried = 0
        self._http = httpx.Client(
            base_url=settings.base_url, timeout=settings.timeout_s, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def _get(self, url: str, params: dict[str, str | int] | None) -> dict[str, Any]:
        s = self.settings
        delay = s.backoff_s
        for attempt in range(s.retries + 1):
            wait = self._last + s.min_interval_s - self._clock()
            if wait > 0:
                self._sleep(wait)
            self._last = self._clock()
            self.requests += 1
            reason: str
            retry_after: float | None = None
            try:
                resp = self._http.get(url, params=params)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code == 200:
                    try:
                        body = resp.json()
                    except ValueError:
                        raise FetchError(f"{resp.url}: the answer is not JSON") from None
                    if not isinstance(body, dict):
                        raise FetchError(f"{resp.url}: the answer is not a JSON object")
                    return body
                if resp.status_code in (401, 403):
                    raise FetchError(
                        f"CEN API refused the key (HTTP {resp.status_code}); check "
                        f"[market] cen_api_key or {ENV_KEY}"
                    )
                if resp.status_code not in RETRY_STATUS:
                    raise FetchError(f"{_redact(str(resp.url))}: HTTP {resp.status_code}")
                reason = f"HTTP {resp.status_code}"
                header = resp.headers.get("Retry-After")
                if header and header.strip().isdigit():
                    retry_after = float(header)
            if attempt == s.retries:
                raise FetchError(
                    f"CEN API: {reason} after {s.retries + 1} attempts ({_redact(url)}); "
                    "the days already downloaded are cached, run the same command to resume"
                )
            self.retried += 1
            self._sleep(min(s.backoff_max_s, retry_after if retry_after is not None else delay))
            delay = min(s.backoff_max_s, delay * 2)
        raise AssertionError("unreachable")

    def day(self, day: date) -> Iterator[dict[str, Any]]:
        """Every CMg record the API holds for ``day`` (all buses), page by page."""
        where = "{day} page {page} record {k}"
        for page, k, rec in self.records(day, self.settings.path):
            yield normalise(rec, where.format(day=day, page=page, k=k))

    def records(self, day: date, path: str) -> Iterator[tuple[int, int, dict[str, Any]]]:
        """(page, index, record) of every record of resource ``path`` for ``day``, following
        either paging shape (module docstring)."""
        s = self.settings
        url: str = path
        params: dict[str, str | int] | None = {
            "startDate": day.isoformat(),
            "endDate": day.isoformat(),
            "page": 1,
            "limit": s.page_limit,
            "user_key": s.api_key or "",
        }
        page = 1
        while True:
            body = self._get(url, params)
            records = body.get("results", body.get("data"))
            if not isinstance(records, list):
                raise FetchError(f"{day} page {page}: no 'results' or 'data' list in the answer")
            for k, rec in enumerate(records):
                if not isinstance(rec, dict):
                    raise FetchError(f"{day} page {page} record {k}: not an object")
                yield page, k, rec
            if "next" in body:  # v2: follow the link (it carries the key and the filters)
                if not body["next"]:
                    return
                link = httpx.URL(str(body["next"]))
                # Keep the link's query (filters, page) and make sure the key goes with it.
                params = {k: v for k, v in link.params.multi_items()}
                params.setdefault("user_key", s.api_key or "")
                url = str(link).split("?", 1)[0]
            else:
                total = int(body.get("totalPages", 1))
                if page >= total:
                    return
                assert params is not None
                params = {**params, "page": page + 1}
            page += 1


def _redact(url: str) -> str:
    return re.sub(r"(user_key=)[^&]+", r"\1***", url)


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """What `bessai market fetch` will do: the days wanted, those already in the cache, and
    where the cache and the output file are."""

    node: str
    days: list[date]
    cached: list[date]
    cache_dir: Path
    output: Path

    @property
    def missing(self) -> list[date]:
        have = set(self.cached)
        return [d for d in self.days if d not in have]


def plan_fetch(node: str, first: date, last: date, out: Path) -> FetchPlan:
    """What a fetch will request and where it writes, without any network call."""
    cache = out / ".cache" / _slug(node)
    days = days_between(first, last)
    cached = [d for d in days if (cache / f"{d.isoformat()}.json").is_file()]
    output = out / f"cen_cmg_{_slug(node)}_{first.isoformat()}_{last.isoformat()}.tsv"
    return FetchPlan(node, days, cached, cache, output)


def fetch(
    plan: FetchPlan,
    client: CenClient,
    *,
    on_day: Callable[[int, int], None] | None = None,
) -> Path:
    """Download the plan's missing days into the cache, then write the TSV."""
    plan.cache_dir.mkdir(parents=True, exist_ok=True)
    missing = plan.missing
    for k, day in enumerate(missing):
        rows = [r for r in client.day(day) if _matches(r, plan.node)]
        if not rows:
            raise FetchError(
                f"{day}: the API has no record for bus {plan.node!r} (give barra_mnemotecnico "
                "or nombre as CEN spells it)"
            )
        path = plan.cache_dir / f"{day.isoformat()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows), encoding="utf-8")
        tmp.replace(path)  # a day is in the cache whole or not at all
        if on_day is not None:
            on_day(k + 1, len(missing))
    return write_tsv(plan)


def write_tsv(plan: FetchPlan) -> Path:
    """Write the fetched prices of a plan as one TSV file; returns its path."""
    lines = ["\t".join(TSV_COLUMNS)]
    for day in plan.days:
        rows = json.loads((plan.cache_dir / f"{day.isoformat()}.json").read_text("utf-8"))
        for r in sorted(rows, key=lambda r: int(r["hora"])):
            cells = []
            for col in TSV_COLUMNS:
                v = r[col]
                # CEN's download writes decimal commas; keep its format so one loader reads both.
                cells.append(repr(float(v)).replace(".", ",") if isinstance(v, float) else str(v))
            lines.append("\t".join(cells))
    plan.output.parent.mkdir(parents=True, exist_ok=True)
    plan.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return plan.output


def fetch_command(
    node: Annotated[str, typer.Option("--node", help="Bus: barra_mnemotecnico or nombre.")],
    first: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD).")],
    last: Annotated[str, typer.Option("--to", help="Last day, inclusive (YYYY-MM-DD).")],
    out: Annotated[Path, typer.Option("--out", help="Output directory (and cache).")] = Path(
        "cen-data"
    ),
    config: Annotated[
        Path | None, typer.Option("--config", help="Deployment TOML with \\[market].")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help=f"API base URL [{DEFAULT_BASE_URL}].")
    ] = None,
    min_interval_s: Annotated[
        float | None, typer.Option("--min-interval-s", help="Seconds between requests [1].")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; download nothing.", metavar="")
    ] = False,
) -> None:
    """Download the CEN real marginal cost of one bus into a TSV (resumable)."""
    try:
        d0, d1 = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError as exc:
        raise ConfigError(f"--from/--to: {exc}") from None
    settings = settings_from(config, base_url=base_url, min_interval_s=min_interval_s)
    plan = plan_fetch(node, d0, d1, out)
    if dry_run:
        typer.echo(
            json.dumps(
                {
                    "node": node,
                    "url": settings.base_url.rstrip("/") + settings.path,
                    "days": len(plan.days),
                    "cached_days": len(plan.cached),
                    "days_to_fetch": len(plan.missing),
                    "min_requests": len(plan.missing),
                    "min_duration_s": len(plan.missing) * settings.min_interval_s,
                    "api_key": "set" if settings.api_key else "MISSING",
                    "cache": str(plan.cache_dir),
                    "output": str(plan.output),
                },
                indent=1,
            )
        )
        return
    run_fetch(
        settings, f"CEN {node}", (len(plan.missing), len(plan.cached)),
        lambda client, on_day: fetch(plan, client, on_day=on_day),
    )  # fmt: skip


def run_fetch(
    settings: FetchSettings,
    label: str,
    missing_cached: tuple[int, int],
    fetch_days: Callable[[CenClient, Callable[[int, int], None]], Path],
) -> None:
    """Run a download with its day progress bar on stderr, report the requests it took and
    print the file it wrote (`market fetch`, real CMg or another dataset)."""
    missing, cached = missing_cached
    err = Console(stderr=True)
    client = CenClient(settings)
    try:
        with day_progress(err, label) as progress:
            task = progress.add_task("days", total=missing)

            def on_day(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            path = fetch_days(client, on_day)
    finally:
        client.close()
    err.print(
        f"[dim]{missing} days fetched ({client.requests} requests, "
        f"{client.retried} retried), {cached} from the cache[/]"
    )
    typer.echo(str(path))
