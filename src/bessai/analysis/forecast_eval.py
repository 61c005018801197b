"""`bessai forecast eval`: a trained model and the naive baselines, judged by forecast error and
by the revenue their forecasts earn in the back-test (:mod:`.evaluate`)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bessai.errors import ConfigError
from bessai.market.commands import ExogOpt, ModelDirOpt
from bessai.market.days import describe
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
    day_progress,
    stdout_console,
)
from bessai.market.prices import DEFAULT_MAX_GAP_H, PriceSeries
from bessai.market.training import need_training_stack
from bessai.optimize.options import (
    CapacityOpt,
    ConservativeOpt,
    MinConfidenceOpt,
    MinSpreadOpt,
    PowerOpt,
    risk_from_options,
)
from bessai.optimize.problem import Risk
from bessai.optimize.storage import StorageSpec

if TYPE_CHECKING:
    from bessai.analysis.evaluate import QuantileForecaster, StrategyResult
    from bessai.market.predictor import OnnxModel


_COLUMNS = ("strategy", "mae", "rmse", "pinball_10", "pinball_50", "pinball_90",
            "coverage_10_90", "kendall_tau_within_day", "net_revenue",
            "capture_vs_daily_perfect")  # fmt: skip


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """The model judged: its directory, whether it is refitted monthly, and the plan price rule
    to use instead of the card's (None: the card's)."""

    model_dir: Path
    refit: str = "none"
    plan_on: str | None = None
    baseline_share: float | None = None
    exog: tuple[str, ...] = ()  # --exog NAME=FILE[:KEY], as given


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
    step_min: StepMinOpt = None,
    power_kw: PowerOpt = 1000.0,
    capacity_kwh: CapacityOpt = 4000.0,
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
    tz: TzOpt = None,
    max_gap_h: MaxGapOpt = DEFAULT_MAX_GAP_H,
    exog: ExogOpt = None,
) -> None:
    """Forecast metrics and back-test capture ratio of a model against the baselines."""
    need_training_stack("forecast eval")
    source = PriceSource.from_options(
        prices, column, node, first, last, step_min=step_min, tz=tz, max_gap_h=max_gap_h
    )
    model = ModelChoice(model_dir, refit, plan_on, baseline_share, tuple(exog or ()))
    storage = StorageSpec(
        max_charge_kw=power_kw, capacity_kwh=capacity_kwh, eta_charge=eta, eta_discharge=eta
    )
    risk = risk_from_options(min_spread, min_confidence, conservative)
    run_eval(source, model, storage, risk, as_json=as_json)


def _onnx_model(choice: ModelChoice) -> OnnxModel:
    """The model directory, planning on the rule the options ask for."""
    from bessai.market.point import PlanPoint
    from bessai.market.predictor import OnnxModel

    onnx = OnnxModel(choice.model_dir)
    # Comparing plan rules needs no retraining: the rule sits on top of the same quantiles.
    onnx.point = PlanPoint(
        onnx.point.plan_on if choice.plan_on is None else choice.plan_on,
        onnx.point.baseline_share if choice.baseline_share is None else choice.baseline_share,
    )
    return onnx


def _forecaster(
    choice: ModelChoice, onnx: OnnxModel, series: PriceSeries
) -> tuple[QuantileForecaster, str]:
    """The forecaster that runs the model on ``series``, and its name in the table."""
    from bessai.analysis.evaluate import onnx_forecaster, refit_forecaster
    from bessai.market.datasets import ExogSource, exog_index, model_exog
    from bessai.market.predictor import check_prices, check_zone
    from bessai.market.training import TrainSpec

    check_prices(onnx.card, series, choice.model_dir)
    check_zone(onnx.card, series, choice.model_dir)
    if choice.refit not in ("none", "monthly"):
        raise ConfigError(f"--refit: {choice.refit!r}; choose none or monthly")
    exog = model_exog(
        onnx.exog_inputs,
        [ExogSource.parse(text) for text in choice.exog],
        exog_index(series, series.index[-1], onnx.horizon),
    )
    if choice.refit == "none":
        return onnx_forecaster(onnx, exog), onnx.kind
    params = {
        **onnx.card.get("train", {}),
        "plan_on": onnx.point.plan_on,
        "baseline_share": onnx.point.baseline_share,
    }
    spec = TrainSpec(
        model=onnx.kind,
        horizon_h=int(onnx.card.get("horizon_h", 24)),
        exog=onnx.exog_inputs,
        **params,
    )
    model = refit_forecaster(spec, series.step.total_seconds(), exog=exog)
    return model, f"{onnx.kind} (refit {choice.refit})"


def run_eval(
    source: PriceSource,
    choice: ModelChoice,
    storage: StorageSpec,
    risk: Risk | None,
    *,
    as_json: bool,
) -> None:
    """Evaluate the chosen model and the baselines on ``source`` and print the table or JSON."""
    from bessai.analysis.evaluate import evaluate

    err = Console(stderr=True)
    onnx = _onnx_model(choice)
    series = source.load(err)
    model, name = _forecaster(choice, onnx, series)
    with day_progress(err, "{task.description}") as progress:
        task = progress.add_task("eval", total=None)

        def on_day(strategy: str, done: int, total: int) -> None:
            progress.update(task, description=strategy, completed=done, total=total)

        results = evaluate(
            series,
            name,
            model,
            storage,
            first_day=source.first,
            last_day=source.last,
            on_day=on_day,
            risk=risk,
        )
    bt = results[0].backtest
    header: dict[str, object] = {
        "node": series.node,
        "unit": series.unit,
        "from": bt.first_day.isoformat(),
        "to": bt.last_day.isoformat(),
        "model_dir": str(choice.model_dir),
        "refit": choice.refit,
        "point": onnx.point.to_json(),
        "risk": None if risk is None else dataclasses.asdict(risk),
        "excluded_days": [x.to_json() for x in bt.excluded],
        "evaluated_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if bt.excluded:
        left_out = sum(x.days for x in bt.excluded)
        err.print(
            f"[yellow]left out {left_out} days, for every strategy: "
            f"{escape(describe(list(bt.excluded)))}[/]",
            highlight=False,
            soft_wrap=True,
        )
    print_eval(header, results, as_json=as_json)


def print_eval(header: dict[str, object], results: list[StrategyResult], *, as_json: bool) -> None:
    """The evaluation as JSON (``header`` and one row per strategy) or as a table."""
    rows = [r.row() for r in results]
    if as_json:
        typer.echo(json.dumps({**header, "results": rows}, indent=1))
        return
    table = Table(title=f"{header['node']} {header['from']} .. {header['to']} ({header['unit']})")
    for c in _COLUMNS:
        table.add_column(c, justify="left" if c == "strategy" else "right")
    for r in rows:
        table.add_row(*(_cell(r[c]) for c in _COLUMNS))
    stdout_console().print(table)


def _cell(v: object) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:,.3f}"
    return str(v)
