"""`bessai forecast train|predict|eval` and `bessai market fetch`."""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bessai.errors import ConfigError, DataError
from bessai.market.prices import PriceSeries
from bessai.optimize.model import Battery
from bessai.price_cli import (
    ColumnOpt,
    ConservativeOpt,
    FromOpt,
    JsonOpt,
    MinConfidenceOpt,
    MinSpreadOpt,
    NodeOpt,
    PricesOpt,
    ToOpt,
    day_progress,
    load_price_file,
    market_day_window,
    parse_day,
    risk_from_options,
    stdout_console,
)

forecast_app = typer.Typer(
    name="forecast", help="Train, run and judge the CMg forecaster.", no_args_is_help=True
)
market_app = typer.Typer(name="market", help="Market data (CEN downloads).", no_args_is_help=True)

ModelDirOpt = Annotated[Path, typer.Option("--model", help="Model directory (from train).")]


def register(app: typer.Typer) -> None:
    app.add_typer(forecast_app)
    app.add_typer(market_app)
    from bessai.market.fetch import fetch_command

    market_app.command("fetch")(fetch_command)


#: The `[train]` extra: what training, export and evaluation import (the gateway needs none).
TRAINING_STACK: tuple[str, ...] = (
    "sklearn",
    "lightgbm",
    "onnx",
    "onnxmltools",
    "skl2onnx",
    "scipy",
)


def _need_training_stack(command: str) -> None:
    missing = []
    for name in TRAINING_STACK:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(
            f"bessai {command} needs the training libraries, missing: {', '.join(missing)}; "
            "install them with: pip install 'bessai[train]'"
        )


def _with_step(series: PriceSeries, step_min: int | None) -> PriceSeries:
    if step_min is None or timedelta(minutes=step_min) == series.step:
        return series
    try:
        return series.resample(timedelta(minutes=step_min))
    except ValueError as exc:
        raise ConfigError(f"--step-min {step_min}: {exc}") from None


@forecast_app.command("train")
def train_command(
    prices: PricesOpt,
    out: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    model: Annotated[
        str, typer.Option("--model", help="naive, week-mean, ridge or lgbm.")
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
) -> None:
    """Fit a model with walk-forward validation and write ONNX models and a model card."""
    _need_training_stack("forecast train")
    from bessai.market.export import write_model_dir
    from bessai.market.training import TrainSpec, fit_model, training_set

    err = Console(stderr=True)
    spec = TrainSpec(
        model=model,
        issue_every_h=issue_every_h,
        n_estimators=n_estimators,
        folds=folds,
        plan_on=plan_on,
        baseline_share=baseline_share,
        band_scale=band_scale,
    )
    series = _with_step(
        market_day_window(
            load_price_file(prices, column, node, err),
            parse_day(first, "--from"),
            parse_day(last, "--to"),
        ),
        step_min,
    )
    with err.status(f"training {model} on {len(series)} steps (walk-forward, {folds} folds)"):
        fitted = fit_model(series.values, series.index, series.timezone, spec)
        check = training_set(series.values, series.index, series.timezone, spec)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # converters' deprecation chatter
            card = write_model_dir(
                fitted,
                spec,
                out,
                x_check=check.x[-5000:],
                y_check=check.y[-5000:],
                meta=_meta(series, prices),
            )
    err.print(f"[dim]model written to {out}[/]")
    typer.echo(json.dumps({k: card[k] for k in ("model", "validation", "onnx", "int8")}))


def _meta(series: PriceSeries, source: Path) -> dict[str, object]:
    local = series.index.tz_convert(series.timezone)
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
            "repaired_steps": len(series.report.issues),
        },
    }


def _check_unit(card: dict[str, object], series: PriceSeries, model_dir: Path) -> None:
    if card.get("unit") != series.unit:
        raise DataError(
            f"{model_dir}: the model was trained on {card.get('unit')}, the prices are in "
            f"{series.unit}; convert them first"
        )
    if float(str(card.get("step_s"))) != series.step.total_seconds():
        raise DataError(
            f"{model_dir}: the model has a step of {card.get('step_s')} s, the prices "
            f"{series.step.total_seconds():g} s (use --step-min)"
        )


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
    step_min: Annotated[int | None, typer.Option("--step-min", help="Resample first.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the next horizon with p10/p50/p90 bands."""
    from bessai.market.predictor import Predictor

    err = Console(stderr=True)
    predictor = Predictor(model_dir)
    series = _with_step(load_price_file(prices, column, node, err), step_min)
    _check_unit(predictor.card, series, model_dir)
    if now is None:
        issue = series.end
    else:
        try:
            issue = datetime.fromisoformat(now)
        except ValueError:
            raise ConfigError(f"--now: {now!r} is not an ISO date-time") from None
        if issue.tzinfo is None:
            raise ConfigError(f"--now: {now!r} needs a UTC offset (e.g. +00:00)")
    fc = predictor.predict(series.prices, issue)
    tz = series.timezone
    if as_json:
        rows = [
            {
                "start_utc": t.isoformat(),
                "p10": round(a, 3),
                "p50": round(b, 3),
                "p90": round(c, 3),
                "plan": round(d, 3),
            }
            for t, a, b, c, d in zip(fc.timestamps, fc.p10, fc.p50, fc.p90, fc.point, strict=True)
        ]
        typer.echo(json.dumps({"node": series.node, "unit": series.unit, "steps": rows}))
        return
    table = Table(title=f"{series.node}: {predictor.card['model']} forecast, {series.unit}")
    for col in ("start (local)", "p10", "p50", "p90", "plan"):
        table.add_column(col, justify="right")
    for t, a, b, c, d in zip(fc.timestamps, fc.p10, fc.p50, fc.p90, fc.point, strict=True):
        table.add_row(
            t.tz_convert(tz).strftime("%Y-%m-%d %H:%M"),
            f"{a:.1f}",
            f"{b:.1f}",
            f"{c:.1f}",
            f"{d:.1f}",
        )
    stdout_console().print(table)


@forecast_app.command("eval")
def eval_command(
    prices: PricesOpt,
    model_dir: ModelDirOpt,
    node: NodeOpt = None,
    column: ColumnOpt = None,
    first: FromOpt = None,
    last: ToOpt = None,
    refit: Annotated[
        str,
        typer.Option(
            "--refit",
            help="none: the model directory as is (ONNX); monthly: refit its model and settings "
            "on all prices before each month (walk-forward).",
        ),
    ] = "none",
    step_min: Annotated[int | None, typer.Option("--step-min", help="Resample first.")] = None,
    power_kw: Annotated[float, typer.Option("--power-kw")] = 1000.0,
    capacity_kwh: Annotated[float, typer.Option("--capacity-kwh")] = 4000.0,
    eta: Annotated[float, typer.Option("--eta", help="Charge and discharge efficiency.")] = 0.95,
    plan_on: Annotated[
        str | None,
        typer.Option("--plan-on", help="Plan on mean or p50 instead of the card's rule."),
    ] = None,
    baseline_share: Annotated[
        float | None,
        typer.Option("--baseline-share", help="Week-mean share instead of the card's (0..1)."),
    ] = None,
    min_spread: MinSpreadOpt = None,
    min_confidence: MinConfidenceOpt = None,
    conservative: ConservativeOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Forecast metrics and back-test capture ratio of a model against the baselines."""
    _need_training_stack("forecast eval")
    from bessai.market.evaluate import evaluate, onnx_forecaster, refit_forecaster
    from bessai.market.point import PlanPoint
    from bessai.market.predictor import OnnxModel
    from bessai.market.training import TrainSpec

    err = Console(stderr=True)
    onnx = OnnxModel(model_dir)
    # Comparing plan rules needs no retraining: the rule sits on top of the same quantiles.
    onnx.point = PlanPoint(
        onnx.point.plan_on if plan_on is None else plan_on,
        onnx.point.baseline_share if baseline_share is None else baseline_share,
    )
    series = _with_step(load_price_file(prices, column, node, err), step_min)
    _check_unit(onnx.card, series, model_dir)
    if refit == "none":
        model = onnx_forecaster(onnx)
    elif refit == "monthly":
        params = {
            **onnx.card.get("train", {}),
            "plan_on": onnx.point.plan_on,
            "baseline_share": onnx.point.baseline_share,
        }
        spec = TrainSpec(model=onnx.kind, horizon_h=int(onnx.card.get("horizon_h", 24)), **params)
        model = refit_forecaster(spec, series.step.total_seconds())
    else:
        raise ConfigError(f"--refit: {refit!r}; choose none or monthly")
    battery = Battery(
        power_kw=power_kw, capacity_kwh=capacity_kwh, eta_charge=eta, eta_discharge=eta
    )
    risk = risk_from_options(min_spread, min_confidence, conservative)
    name = f"{onnx.kind}" + ("" if refit == "none" else f" (refit {refit})")
    with day_progress(err, "{task.description}") as progress:
        task = progress.add_task("eval", total=None)

        def on_day(strategy: str, done: int, total: int) -> None:
            progress.update(task, description=strategy, completed=done, total=total)

        results = evaluate(
            series,
            name,
            model,
            battery,
            first_day=parse_day(first, "--from"),
            last_day=parse_day(last, "--to"),
            on_day=on_day,
            risk=risk,
        )
    rows = [r.row() for r in results]
    bt = results[0].backtest
    header = {
        "node": series.node,
        "unit": series.unit,
        "from": bt.first_day.isoformat(),
        "to": bt.last_day.isoformat(),
        "model_dir": str(model_dir),
        "refit": refit,
        "point": onnx.point.to_json(),
        "risk": None if risk is None else dataclasses.asdict(risk),
        "evaluated_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if as_json:
        typer.echo(json.dumps({**header, "results": rows}, indent=1))
        return
    table = Table(title=f"{series.node} {header['from']} .. {header['to']} ({series.unit})")
    cols = ("strategy", "mae", "rmse", "pinball_10", "pinball_50", "pinball_90",
            "coverage_10_90", "kendall_tau_within_day", "net_revenue",
            "capture_vs_daily_perfect")  # fmt: skip
    for c in cols:
        table.add_column(c, justify="left" if c == "strategy" else "right")
    for r in rows:
        table.add_row(*(_cell(r[c]) for c in cols))
    stdout_console().print(table)


def _cell(v: object) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:,.3f}"
    return str(v)
