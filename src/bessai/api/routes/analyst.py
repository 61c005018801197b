"""`/api/v1/analyst/...`: pick a price series, a forecaster, a battery and a day or a range,
and see the forecast, the plan with its reasons, what it would have earned and how that
changes with the battery's size. A read key suffices; nothing here touches a device.

A day answers at once. A range and a size sweep are jobs: the POST answers 202 with the job,
`GET /analyst/jobs/{id}` its progress (days done of the total) and, once done, the result.
Results are cached by their inputs (the prices' fingerprint included): asking again answers
200 with the finished job at once."""

# No `from __future__ import annotations`: FastAPI resolves route annotations where defined.

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from bessai.analysis.analyst import BUILTIN_FORECASTERS, Progress, Study
from bessai.analysis.settle import SETTLEMENTS
from bessai.api.analyst import Analyst, BusyError, Job, SeriesEntry, cache_key
from bessai.api.analyst_views import (
    CatalogOut,
    DayIn,
    DayOut,
    JobOut,
    RangeIn,
    SeriesOut,
    SweepIn,
    UploadIn,
    day_view,
    range_view,
    series_out,
    sweep_view,
)
from bessai.api.deps import READ, AuthFirstRoute
from bessai.api.responses import BODY, KEYED, Responses, problem
from bessai.errors import BessaiError

#: A `day` or a range the series cannot answer, or prices that do not load.
BAD_STUDY: Responses = {400: problem("a study the series cannot answer (the detail says why)")}
STARTED: Responses = {202: {"model": JobOut, "description": "the job runs: poll it"}}
BUSY: Responses = {503: problem("too many analyst jobs queued or running (Retry-After)")}
UNKNOWN: Responses = {404: problem("unknown series or job")}


async def analyst_of(request: Request) -> Analyst:
    """The analyst state of the app (a dependency)."""
    analyst: Analyst = request.app.state.analyst
    return analyst


AnalystDep = Annotated[Analyst, Depends(analyst_of)]

router = APIRouter(
    prefix="/analyst",
    route_class=AuthFirstRoute,
    responses=KEYED,
    dependencies=[READ],
    tags=["analyst"],
)


async def _entry(analyst: Analyst, key: str) -> SeriesEntry:
    try:
        entry = await asyncio.to_thread(analyst.catalog.get, key)
    except BessaiError as exc:
        raise HTTPException(400, str(exc)) from None
    if entry is None:
        known = ", ".join(e.id for e in analyst.catalog.entries())
        raise HTTPException(404, f"unknown series {key!r}; series: {known}")
    return entry


def _check_days(entry: SeriesEntry, study: Study) -> None:
    if study.first_day < entry.first_day or study.last_day > entry.last_day:
        raise HTTPException(
            400,
            f"{entry.id} has market days {entry.first_day} .. {entry.last_day}; "
            f"{study.first_day} .. {study.last_day} is outside",
        )


def _study(body: DayIn | RangeIn, entry: SeriesEntry) -> Study:
    try:
        study = body.study()
    except BessaiError as exc:
        raise HTTPException(400, str(exc)) from None
    _check_days(entry, study)
    return study


def _submit(analyst: Analyst, kind: str, key: str, work: Callable[[Progress], Any]) -> Job:
    try:
        return analyst.jobs.submit(kind, key, work)
    except BusyError as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "5"}) from None


def _job_out(job: Job, response: Response) -> JobOut:
    if job.state in ("queued", "running"):
        response.status_code = 202
    return JobOut(
        id=job.id, kind=job.kind, state=job.state, done=job.done, total=job.total,
        cached=job.cached, elapsed_s=job.elapsed_s, error=job.error, result=job.result,
    )  # fmt: skip


def _inputs(body: DayIn | RangeIn, analyst: Analyst) -> dict[str, Any]:
    """What a result depends on besides the prices: the request and the model's version."""
    data: dict[str, Any] = body.model_dump(mode="json")
    data.pop("series", None)
    data["model_version"] = analyst.models.version(body.forecaster)
    return data


@router.get("/catalog", response_model=CatalogOut)
async def get_catalog(analyst: AnalystDep) -> CatalogOut:
    """The price series to pick from (shipped, named at start, uploaded), the forecasters
    (the baselines, perfect foresight, the rule engine and the trained models found) and who
    may execute the plans."""
    try:
        entries = await asyncio.to_thread(analyst.catalog.entries)
    except BessaiError as exc:
        raise HTTPException(400, str(exc)) from None
    return CatalogOut(
        gateway=analyst.gateway,
        series=[series_out(e) for e in entries],
        forecasters=[*BUILTIN_FORECASTERS, *analyst.models.names()],
        settlements=list(SETTLEMENTS),
    )


@router.post("/series", response_model=SeriesOut, responses={**BODY, **BAD_STUDY})
async def post_series(body: UploadIn, analyst: AnalystDep) -> SeriesOut:
    """Load a price file for this session of the server (kept in memory, the oldest of more
    than eight dropped). The body is capped by `api.max_body_bytes`."""
    try:
        entry = await asyncio.to_thread(
            analyst.catalog.upload, body.name, body.content, body.node, body.tz
        )
    except BessaiError as exc:
        raise HTTPException(400, str(exc)) from None
    return series_out(entry)


@router.post("/day", response_model=DayOut, responses={**BODY, **BAD_STUDY, **UNKNOWN})
async def post_day(body: DayIn, analyst: AnalystDep) -> DayOut:
    """One market day: the forecast with its p10-p90 band against the real price, the plan
    and its SOC with each slot's reason, what the plant executed and the day's KPIs. The
    figures equal `bessai backtest --from DAY --to DAY --json`; with the `perfect`
    forecaster the plan equals `bessai optimize --from DAY --to DAY`."""
    entry = await _entry(analyst, body.series)
    _study(body, entry)
    key = cache_key("day", entry.fingerprint, _inputs(body, analyst))
    cached = analyst.cache.get(key)
    if isinstance(cached, DayOut):
        return cached
    try:
        out = await asyncio.to_thread(day_view, entry, body, analyst.models)
    except BessaiError as exc:
        raise HTTPException(400, str(exc)) from None
    analyst.cache.put(key, out)
    return out


@router.post(
    "/backtests",
    response_model=JobOut,
    status_code=200,
    responses={**STARTED, **BODY, **BAD_STUDY, **UNKNOWN, **BUSY},
)
async def post_backtest(body: RangeIn, response: Response, analyst: AnalystDep) -> JobOut:
    """Back-test a range of days (`bessai backtest --from --to --json`): 202 with a job to
    poll, or 200 with the finished job when the same inputs were computed before."""
    entry = await _entry(analyst, body.series)
    _study(body, entry)
    key = cache_key("backtest", entry.fingerprint, _inputs(body, analyst))
    job = _submit(
        analyst, "backtest", key, lambda progress: range_view(entry, body, analyst.models, progress)
    )
    return _job_out(job, response)


@router.post(
    "/sweeps",
    response_model=JobOut,
    status_code=200,
    responses={**STARTED, **BODY, **BAD_STUDY, **UNKNOWN, **BUSY},
)
async def post_sweep(body: SweepIn, response: Response, analyst: AnalystDep) -> JobOut:
    """The range's back-test at each battery size given (how big should it be): net revenue,
    capture of perfect foresight and cycles per size. A job, like `/backtests`."""
    entry = await _entry(analyst, body.series)
    _study(body, entry)
    key = cache_key("sweep", entry.fingerprint, _inputs(body, analyst))
    job = _submit(
        analyst, "sweep", key, lambda progress: sweep_view(entry, body, analyst.models, progress)
    )
    return _job_out(job, response)


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    responses={**STARTED, **UNKNOWN},
)
async def get_job(job_id: str, response: Response, analyst: AnalystDep) -> JobOut:
    """A job's progress (202 while it runs) and, once done, its result (200)."""
    job = analyst.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"unknown job {job_id!r} (jobs are kept for a while only)")
    return _job_out(job, response)
