"""What the analyst routes keep between requests: the catalog of price series (shipped, named
files, uploads), the trained models found, the results cached by their inputs, and the jobs
that compute long ranges in a worker thread while the page polls their progress."""

from __future__ import annotations

import hashlib
import json
import queue
import re
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from bessai.analysis.analyst import Models, Progress
from bessai.errors import BessaiError, ConfigError
from bessai.market.days import market_days
from bessai.market.prices import PriceSeries, load_prices

#: The price sample shipped in the package (the gateway's `builtin:crucero-2023`).
SHIPPED = {"crucero-2023": "builtin:crucero-2023"}
MAX_UPLOADS = 8
MAX_JOBS = 64
#: Jobs queued or running at once; more are refused (503) rather than stacked behind them.
MAX_PENDING = 4
MAX_CACHED = 128

JobState = Literal["queued", "running", "done", "failed"]


@dataclass(frozen=True, slots=True)
class SeriesEntry:
    """A price series the analyst can pick, with its first and last complete market day."""

    id: str
    source: Literal["shipped", "file", "upload"]
    name: str
    series: PriceSeries
    first_day: date
    last_day: date
    fingerprint: str

    @classmethod
    def of(cls, id_: str, source: Literal["shipped", "file", "upload"], name: str,
           series: PriceSeries) -> SeriesEntry:  # fmt: skip
        days = market_days(series)
        if not days:
            raise ConfigError(f"{name}: no complete market day in the prices")
        digest = hashlib.sha256(series.values.tobytes())
        digest.update(f"{series.index[0]}|{series.step}|{series.unit}|{series.timezone}".encode())
        return cls(id_, source, name, series, days[0][0], days[-1][0], digest.hexdigest()[:16])


def slug(text: str) -> str:
    """A lowercase id from a file or node name."""
    out = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return out[:40] or "series"


class Catalog:
    """The series by id: the shipped sample and the files named at start, loaded on first
    use, and uploads (at most :data:`MAX_UPLOADS`, the oldest dropped first)."""

    def __init__(self, files: list[tuple[str, Path]], resolve: Callable[[str], Path]) -> None:
        self._pending: list[tuple[str, Literal["shipped", "file"], str]] = [
            (key, "shipped", spec) for key, spec in SHIPPED.items()
        ]
        self._pending += [(key, "file", str(path)) for key, path in files]
        self._resolve = resolve
        self._entries: dict[str, SeriesEntry] = {}
        self._uploads: list[str] = []
        self._lock = threading.Lock()

    def _load_pending(self) -> None:
        with self._lock:
            while self._pending:
                key, source, spec = self._pending.pop(0)
                path = self._resolve(spec)
                series = load_prices(path)
                self._entries[key] = SeriesEntry.of(key, source, path.name, series)

    def entries(self) -> list[SeriesEntry]:
        self._load_pending()
        return list(self._entries.values())

    def get(self, key: str) -> SeriesEntry | None:
        self._load_pending()
        return self._entries.get(key)

    def upload(self, name: str, content: str, node: str | None, tz: str | None) -> SeriesEntry:
        """Load an uploaded price file (any format `bessai optimize --prices` reads)."""
        self._load_pending()
        suffix = Path(name).suffix.lower() if Path(name).suffix.lower() in (".csv", ".tsv") else ""
        with tempfile.TemporaryDirectory(prefix="bessai-upload-") as tmp:
            path = Path(tmp) / f"upload{suffix or '.csv'}"
            path.write_text(content, encoding="utf-8")
            try:
                series = load_prices(path, node=node, tz=tz)
            except BessaiError as exc:
                raise ConfigError(str(exc).replace(str(path), name)) from None
        key = "upload-" + slug(Path(name).stem)
        entry = SeriesEntry.of(key, "upload", name, series)
        with self._lock:
            if key in self._uploads:
                self._uploads.remove(key)
            self._uploads.append(key)
            self._entries[key] = entry
            while len(self._uploads) > MAX_UPLOADS:
                self._entries.pop(self._uploads.pop(0), None)
        return entry


@dataclass(slots=True)
class Job:
    """A long computation and how far it is."""

    id: str
    kind: str
    key: str
    state: JobState = "queued"
    done: int = 0
    total: int = 0
    result: Any = None
    error: str | None = None
    cached: bool = False
    created: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def elapsed_s(self) -> float:
        return round((self.finished or time.monotonic()) - self.created, 3)


def cache_key(kind: str, fingerprint: str, inputs: dict[str, Any]) -> str:
    """The key a result is cached under: what was asked and the prices it was asked of."""
    text = json.dumps({"kind": kind, "prices": fingerprint, **inputs}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class ResultCache:
    """Results by input key, the least recently used dropped past ``size``."""

    def __init__(self, size: int = MAX_CACHED) -> None:
        self.size = size
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, key: str) -> Any:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key]

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class BusyError(BessaiError):
    """Too many jobs queued or running."""


class Jobs:
    """Long computations, one at a time in a worker thread (the machine's other core stays
    with the gateway), deduplicated and cached by their inputs. The worker is a daemon thread:
    a back-test in progress never holds up the process's exit."""

    def __init__(self, cache: ResultCache) -> None:
        self.cache = cache
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._running: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[Job, Callable[[Progress], Any]]] = queue.Queue()
        self._worker: threading.Thread | None = None

    def _work(self) -> None:
        while True:
            job, work = self._queue.get()
            self._run(job, work)

    def submit(self, kind: str, key: str, work: Callable[[Progress], Any]) -> Job:
        """A job for ``work``: finished at once when the result is cached, the same job when
        the same inputs are already being computed."""
        with self._lock:
            running = self._running.get(key)
            if running is not None:
                return running
            job = Job(uuid.uuid4().hex[:12], kind, key)
            cached = self.cache.get(key)
            if cached is None and len(self._running) >= MAX_PENDING:
                raise BusyError(
                    f"{len(self._running)} analyst jobs are queued or running (at most "
                    f"{MAX_PENDING}); retry when one has finished"
                )
            if cached is not None:
                job.state, job.result, job.cached = "done", cached, True
                job.finished = job.created
            else:
                self._running[key] = job
            self._jobs[job.id] = job
            while len(self._jobs) > MAX_JOBS:
                self._jobs.popitem(last=False)
        if job.state == "queued":
            self._queue.put((job, work))
            with self._lock:
                if self._worker is None:
                    self._worker = threading.Thread(target=self._work, name="analyst", daemon=True)
                    self._worker.start()
        return job

    def _run(self, job: Job, work: Callable[[Progress], Any]) -> None:
        job.state = "running"

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        try:
            job.result = work(progress)
            self.cache.put(job.key, job.result)
            job.state = "done"
        except BessaiError as exc:
            job.error, job.state = str(exc), "failed"
        except Exception as exc:  # a job's failure is reported, never lost
            job.error, job.state = f"internal error: {type(exc).__name__}: {exc}", "failed"
        finally:
            job.finished = time.monotonic()
            with self._lock:
                self._running.pop(job.key, None)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)


@dataclass(slots=True)
class Analyst:
    """Everything the analyst routes share (`app.state.analyst`)."""

    catalog: Catalog
    models: Models
    gateway: bool = False  # served by a gateway (the live dashboard is there too)
    cache: ResultCache = field(default_factory=ResultCache)
    jobs: Jobs = field(init=False)

    def __post_init__(self) -> None:
        self.jobs = Jobs(self.cache)
