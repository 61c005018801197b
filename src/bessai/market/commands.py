"""`bessai forecast train|predict` and `bessai market fetch`.

The `forecast` group is created here; `bessai forecast eval` (which needs the back-test) is added
to it by :mod:`bessai.analysis.commands`.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from datetime import datetime
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from bessai.errors import ConfigError, DataError
from bessai.market.datasets import ExogSource, exog_index, load_exog, model_exog
from bessai.market.features import ExogMissingError
from bessai.market.options import (
    ColumnOpt,
    FromOpt,
    JsonOpt,
    MaxGapOpt,
    NodeOpt,
    PricesOpt,
    PriceSource,
    StepMinOpt,
    ToOpt,
    TzOpt,
    stage_progress,
    stdout_console,
)
from bessai.market.prices import DEFAULT_MAX_GAP_H, PriceSeries
from bessai.market.training import TrainingSet, TrainSpec, need_training_stack, training_set

forecast_app = typer.Typer(
    name="forecast", help="Train, run and judge the CMg forecaster.", no_args_is_help=True
)
market_app = typer.Typer(name="market", help="Market data (CEN downloads).", no_args_is_help=True)

ModelDirOpt = Annotated[Path, typer.Option("--model", help="Model directory (from train).")]
ExogOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--exog",
        help="Exogenous input NAME=FILE[:KEY]: a CSV from `bessai market fetch --dataset` and "
        "the key to read (a bus, a technology, system; default: the file's only key or the "
        "model's). Repeatable.",
    ),
]


def register(app: typer.Typer) -> None:
    """Add `bessai market fetch` and `bessai forecast train|predict`."""
    app.add_typer(forecast_app)
    app.add_typer(market_app)
    from bessai.market.datasets import fetch_any_command

    market_app.command("fetch")(fetch_any_command)


@forecast_app.command("train")
def train_command(
    prices: PricesOpt,
    out: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    kind: Annotated[
        str, typer.Option("--kind", help="Model kind: naive, week-mean, ridge or lgbm.")
    ] = "lgbm",
    node: NodeOpt = None,
    column: ColumnOpt = None,
    first: FromOpt = None,
    last: ToOpt = None,
    step_min: Annotated[
        int | None,
        typer.Option("--step-min", help="Train on this step (15 upsamples an hourly series)."),
    ] = None,
    issue_every_h: Annotated[
        int, typer.Option("--issue-every-h", help="Hours between training issue times.")
    ] = 6,
    n_estimators: Annotated[
        int, typer.Option("--n-estimators", help="LightGBM trees per quantile.")
    ] = 300,
    folds: Annotated[int, typer.Option("--folds", help="Walk-forward validation folds.")] = 4,
    plan_on: Annotated[
        str,
        typer.Option(
            "--plan-on",
            help="Price the optimizer plans on: mean (Swanson's rule on p10/p50/p90) or p50.",
        ),
    ] = "mean",
    baseline_share: Annotated[
        float,
        typer.Option(
            "--baseline-share", help="Share of the week-mean forecast in the plan price (0..1)."
        ),
    ] = 0.5,
    band_scale: Annotated[
        str,
        typer.Option(
            "--band-scale",
            help="Band edges in units of the last week's spread (std_168h) or of price (none).",
        ),
    ] = "std_168h",
    tz: TzOpt = None,
    max_gap_h: MaxGapOpt = DEFAULT_MAX_GAP_H,
    exog: ExogOpt = None,
    removed_model: Annotated[str | None, typer.Option("--model", hidden=True)] = None,
) -> None:
    """Fit a model with walk-forward validation and write ONNX models and a model card."""
    if removed_model is not None:
        raise ConfigError(
            f"forecast train: --model is now the model directory of predict and eval; give "
            f"the model kind as --kind {removed_model} (and the directory to write as --out)"
        )
    need_training_stack("forecast train")
    spec = TrainSpec(
        model=kind,
        issue_every_h=issue_every_h,
        n_estimators=n_estimators,
        folds=folds,
        plan_on=plan_on,
        baseline_share=baseline_share,
        band_scale=band_scale,
    )
    source = PriceSource.from_options(
        prices, column, node, first, last, step_min=step_min, tz=tz, max_gap_h=max_gap_h
    )
    sources = [ExogSource.parse(text) for text in exog or []]
    run_train(source, spec, out, sources)


def _training_exog(
    spec: TrainSpec, sources: list[ExogSource], series: PriceSeries
) -> tuple[TrainSpec, pd.DataFrame | None]:
    """The spec with the exogenous inputs of ``sources`` and their values on the prices'
    steps (None: no input)."""
    if not sources:
        return spec, None
    inputs, frame = load_exog(sources, series.index)
    return dataclasses.replace(spec, exog=inputs), frame


def _exog_features(
    series: PriceSeries, spec: TrainSpec, exog: pd.DataFrame | None, sources: list[ExogSource]
) -> TrainingSet:
    """The training set; an exogenous input without a value where a row reads one is an
    error naming the file and the hour."""
    try:
        return training_set(series.values, series.index, series.timezone, spec, exog=exog)
    except ExogMissingError as exc:
        files = ", ".join(f"{s.name}={s.file}" for s in sources)
        local = series.index.tz_convert(series.timezone)
        raise DataError(
            f"{exc}; a row reads each input at its target hours, or at the same hours of an "
            "earlier day when they are not yet published at its issue time: fetch every day "
            f"from {local[0]:%Y-%m-%d} to {local[-1]:%Y-%m-%d} into {files}, or train "
            "on fewer days (--from/--to)"
        ) from None


def run_train(
    source: PriceSource, spec: TrainSpec, out: Path, exog: list[ExogSource] | None = None
) -> None:
    """Train ``spec`` on the prices of ``source`` (with the exogenous inputs ``exog`` name) and
    write the model directory ``out``, with a progress bar over the stages: features, every
    estimator of every fold, export."""
    from bessai.market.export import write_model_dir
    from bessai.market.training import fit_model, fit_steps

    err = Console(stderr=True)
    series = source.load_window(err)
    spec, frame = _training_exog(spec, exog or [], series)
    total = fit_steps(spec) + 2  # features, the estimators, export
    with stage_progress(err, f"training {spec.model}") as progress:
        task = progress.add_task("features", total=total)
        data = _exog_features(series, spec, frame, exog or [])
        progress.update(task, completed=1, description="walk-forward validation")

        def on_fit(stage: str, done: int, _total: int) -> None:
            progress.update(task, completed=1 + done, description=stage)

        fitted = fit_model(
            series.values,
            series.index,
            series.timezone,
            spec,
            exog=frame,
            data=data,
            on_progress=on_fit,
        )
        progress.update(task, description="ONNX export and checks")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # converters' deprecation chatter
            card = write_model_dir(
                fitted,
                spec,
                out,
                x_check=data.x[-5000:],
                y_check=data.y[-5000:],
                meta=_meta(series, source.path, data.left_out),
            )
        progress.update(task, completed=total)
    if data.left_out:
        err.print(
            f"[yellow]{data.left_out} issue times left out: their history or target window "
            "touches a gap in the prices (listed above)[/]"
        )
    err.print(f"[dim]model written to {out}[/]")
    typer.echo(json.dumps({k: card[k] for k in ("model", "exog", "validation", "onnx", "int8")}))


def _meta(series: PriceSeries, source: Path, left_out: int) -> dict[str, object]:
    """What the card says about the data: counted over the training window, not the file."""
    local = series.index.tz_convert(series.timezone)
    start, end = series.start, series.end
    return {
        "node": series.node,
        "unit": series.unit,
        "timezone": series.timezone,
        "step_s": series.step.total_seconds(),
        "data": {
            "source": source.name,
            "first_step_utc": series.index[0].isoformat(),
            "last_step_utc": series.index[-1].isoformat(),
            "first_day": str(local[0].date()),
            "last_day": str(local[-1].date()),
            "steps": len(series),
            "repaired_steps": sum(1 for t in series.report.filled if start <= t < end),
            "steps_without_price": int(series.prices.isna().sum()),
            "issue_times_left_out": left_out,
        },
    }


def _issue_time(now: str | None, series: PriceSeries) -> datetime:
    if now is None:
        return series.end
    try:
        issue = datetime.fromisoformat(now)
    except ValueError:
        raise ConfigError(f"--now: {now!r} is not an ISO date-time") from None
    if issue.tzinfo is None:
        raise ConfigError(f"--now: {now!r} needs a UTC offset (e.g. +00:00)")
    return issue


@forecast_app.command("predict")
def predict_command(
    model_dir: ModelDirOpt,
    prices: PricesOpt,
    node: NodeOpt = None,
    column: ColumnOpt = None,
    now: Annotated[
        str | None,
        typer.Option("--now", help="Issue time (ISO, with offset) [the end of the prices]."),
    ] = None,
    step_min: StepMinOpt = None,
    as_json: JsonOpt = False,
    tz: TzOpt = None,
    max_gap_h: MaxGapOpt = DEFAULT_MAX_GAP_H,
    exog: ExogOpt = None,
) -> None:
    """Print the next horizon with p10/p50/p90 bands."""
    from bessai.market.predictor import Predictor, check_prices

    err = Console(stderr=True)
    predictor = Predictor(model_dir)
    source = PriceSource.from_options(
        prices, column, node, step_min=step_min, tz=tz, max_gap_h=max_gap_h
    )
    series = source.load(err)
    check_prices(predictor.card, series, model_dir)
    issue = _issue_time(now, series)
    frame = model_exog(
        predictor.model.exog_inputs,
        [ExogSource.parse(text) for text in exog or []],
        exog_index(series, pd.Timestamp(issue), predictor.model.horizon),
    )
    fc = predictor.predict(series.prices, issue, exog=frame)
    rows = list(zip(fc.timestamps, fc.p10, fc.p50, fc.p90, fc.point, strict=True))
    if as_json:
        steps = [
            {
                "start_utc": t.isoformat(),
                "p10": round(a, 3),
                "p50": round(b, 3),
                "p90": round(c, 3),
                "plan": round(d, 3),
            }
            for t, a, b, c, d in rows
        ]
        typer.echo(json.dumps({"node": series.node, "unit": series.unit, "steps": steps}))
        return
    table = Table(title=f"{series.node}: {predictor.card['model']} forecast, {series.unit}")
    for col in ("start (local)", "p10", "p50", "p90", "plan"):
        table.add_column(col, justify="right")
    for t, a, b, c, d in rows:
        local = t.tz_convert(series.timezone).strftime("%Y-%m-%d %H:%M")
        table.add_row(local, f"{a:.1f}", f"{b:.1f}", f"{c:.1f}", f"{d:.1f}")
    stdout_console().print(table)
