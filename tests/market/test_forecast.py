"""Features, training, ONNX export, the gateway predictor and the evaluation, on small slices
of the real CEN series (the full-year figures are in docs/benchmarks.md, not here)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bessai.analysis.evaluate import evaluate, onnx_forecaster, refit_forecaster
from bessai.cli import app
from bessai.errors import DataError
from bessai.market.bands import BandCalibration, apply_calibration, fit_calibration
from bessai.market.baselines import FORECASTERS
from bessai.market.export import ONNX_TOLERANCE, write_model_dir
from bessai.market.features import BASE_FEATURES, build_features
from bessai.market.predictor import OnnxModel, Predictor
from bessai.market.prices import PriceSeries, load_prices
from bessai.market.training import TrainSpec, fit_model, fit_steps, training_set
from bessai.optimize import Risk, StorageSpec

TZ = "America/Santiago"
SMALL = {"n_estimators": 40, "issue_every_h": 12, "folds": 2}


@pytest.fixture(scope="module")
def valdivia(data_dir: Path) -> PriceSeries:
    return load_prices(data_dir / "cen_cmg_valdivia220_2023.tsv")


@pytest.fixture(scope="module")
def spring(valdivia: PriceSeries) -> PriceSeries:
    return valdivia.between(
        datetime(2023, 2, 1, 3, tzinfo=UTC), datetime(2023, 5, 1, 4, tzinfo=UTC)
    )


@pytest.fixture(scope="module")
def model_dirs(spring: PriceSeries, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for kind in ("lgbm", "ridge", "week-mean"):
        spec = TrainSpec(model=kind, **SMALL)  # type: ignore[arg-type]
        fitted = fit_model(spring.values, spring.index, TZ, spec)
        data = training_set(spring.values, spring.index, TZ, spec)
        d = tmp_path_factory.mktemp(kind)
        meta = {"node": spring.node, "unit": spring.unit, "timezone": TZ, "step_s": 3600.0}
        write_model_dir(fitted, spec, d, x_check=data.x, y_check=data.y, meta=meta)
        out[kind] = d
        out[f"{kind}-native"] = fitted  # type: ignore[assignment]
    return out


def test_features_never_read_the_target_window(spring: PriceSeries) -> None:
    values = spring.values
    issue = np.array([24 * 10, 24 * 20])
    x, target = build_features(values, spring.index, issue, 24, TZ)
    poisoned = values.copy()
    for i in issue:
        poisoned[i : i + 24] = 1e6
    x2, _ = build_features(poisoned, spring.index, issue, 24, TZ)
    np.testing.assert_array_equal(x, x2)
    col = BASE_FEATURES.index
    assert x[0, col("lag_24h")] == pytest.approx(values[target[0] - 24])
    assert x[5, col("lag_168h")] == pytest.approx(values[target[5] - 168])
    assert x[3, col("lead_h")] == 3.0
    week = [values[target[7] - 24 * d] for d in range(1, 8)]
    assert x[7, col("week_mean")] == pytest.approx(np.mean(week), rel=1e-6)


def test_calendar_features_know_chilean_holidays(valdivia: PriceSeries) -> None:
    index = valdivia.index
    local = index.tz_convert(TZ)
    # Fiestas Patrias: 18 September 2023 (Monday) is a public holiday.
    i = int(np.flatnonzero((local.month == 9) & (local.day == 18) & (local.hour == 0))[0])
    x, _ = build_features(valdivia.values, index, np.array([i]), 24, TZ)
    col = BASE_FEATURES.index
    assert (x[:, col("holiday")] == 1.0).all()
    assert x[0, col("weekday")] == 0.0
    assert x[0, col("hour")] == 0.0
    too_early = np.array([100])
    with pytest.raises(DataError, match="168 h of history"):
        build_features(valdivia.values, index, too_early, 24, TZ)


def test_exogenous_columns_are_read_at_the_target_step(spring: PriceSeries) -> None:
    index = spring.index
    exog = pd.DataFrame({"demand_mw": np.arange(len(index), dtype=float)}, index=index)
    issue = np.array([24 * 10])
    x, target = build_features(spring.values, index, issue, 24, TZ, exog=exog)
    assert x.shape[1] == len(BASE_FEATURES) + 1
    np.testing.assert_array_equal(x[:, -1], target.astype(np.float32))
    exog.iloc[target[3], 0] = np.nan
    with pytest.raises(DataError, match="'demand_mw' has no value for 2023-02-11 06:00 UTC"):
        build_features(spring.values, index, issue, 24, TZ, exog=exog)


def test_bands_never_cross_and_calibrate_to_about_80_percent() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(100, 20, 4000)
    hour = np.tile(np.arange(24.0), 4000 // 24 + 1)[:4000]
    # A quantile model whose bands are too narrow and sometimes crossed.
    raw = np.stack([np.full(4000, 105.0), np.full(4000, 100.0), np.full(4000, 95.0)], axis=1)
    cal = fit_calibration(raw, y, hour)
    q = apply_calibration(raw, hour, cal)
    assert (np.diff(q, axis=1) >= 0).all()
    y_new = rng.normal(100, 20, 4000)
    cover = np.mean((y_new >= q[:, 0]) & (y_new <= q[:, 2]))
    assert 0.75 <= cover <= 0.85


def test_scaled_bands_follow_a_change_of_regime() -> None:
    """Calibrated in a wild period, judged in a calm one: edges in units of the week's spread
    keep about 80 %, edges in price units over-cover the calm period."""
    rng = np.random.default_rng(2)
    n = 4800
    hour = np.tile(np.arange(24.0), n // 24)
    spread_wild = rng.uniform(30, 50, n)
    spread_calm = spread_wild / 4

    def raw_of(spread: np.ndarray) -> np.ndarray:
        # A quantile model whose own bands follow the spread, too narrow by half.
        return np.stack([100 - 0.64 * spread, np.full(n, 100.0), 100 + 0.64 * spread], axis=1)

    y_wild = 100 + rng.normal(0, 1, n) * spread_wild
    y_calm = 100 + rng.normal(0, 1, n) * spread_calm
    scaled = fit_calibration(raw_of(spread_wild), y_wild, hour, spread_wild)
    plain = fit_calibration(raw_of(spread_wild), y_wild, hour)
    assert scaled.scale_floor is not None
    assert plain.scale_floor is None

    def cover(cal: BandCalibration, spread: np.ndarray, y: np.ndarray) -> float:
        q = apply_calibration(raw_of(spread), hour, cal, spread)
        assert (np.diff(q, axis=1) >= 0).all()
        return float(np.mean((y >= q[:, 0]) & (y <= q[:, 2])))

    assert 0.75 <= cover(scaled, spread_wild, y_wild) <= 0.85
    assert 0.75 <= cover(scaled, spread_calm, y_calm) <= 0.85
    assert cover(plain, spread_calm, y_calm) > 0.99
    # The card round trip keeps the unit, and a scaled calibration without spreads is refused.
    again = BandCalibration.from_json(scaled.to_json())
    assert again == scaled
    with pytest.raises(ValueError, match="needs the spread"):
        apply_calibration(raw_of(spread_wild), hour, scaled)


def test_onnx_equals_the_training_time_model(
    model_dirs: dict[str, Path], spring: PriceSeries
) -> None:
    spec = TrainSpec(model="lgbm", **SMALL)  # type: ignore[arg-type]
    x = training_set(spring.values, spring.index, TZ, spec).x
    for kind in ("lgbm", "ridge", "week-mean"):
        native = model_dirs[f"{kind}-native"].predict(x)  # type: ignore[attr-defined]
        onnx = OnnxModel(model_dirs[kind]).quantiles(x)
        if kind == "ridge":
            card = json.loads((model_dirs[kind] / "card.json").read_text())
            if card["int8"]["applied"]:
                continue  # the int8 file is judged by its own report below
        assert np.max(np.abs(onnx - native)) <= ONNX_TOLERANCE, kind
    card = json.loads((model_dirs["lgbm"] / "card.json").read_text())
    assert card["onnx"]["max_abs_diff"] <= ONNX_TOLERANCE
    assert set(card["files"]) == {"p10", "p50", "p90"}
    assert card["int8"]["applied"] is False
    ridge = json.loads((model_dirs["ridge"] / "card.json").read_text())
    assert {"mae_float", "mae_int8", "mae_loss_share"} <= set(ridge["int8"])


def test_predictor_runs_without_the_training_stack(
    model_dirs: dict[str, Path], data_dir: Path
) -> None:
    prices = data_dir / "cen_cmg_valdivia220_2023.tsv"
    script = f"""
import sys
from datetime import datetime, UTC
from bessai.market.prices import load_prices
from bessai.market.predictor import Predictor
s = load_prices({str(prices)!r})
p = Predictor({str(model_dirs["lgbm"])!r})
f = p.predict(s.prices, datetime(2023, 6, 1, 4, tzinfo=UTC))
assert len(f.p50) == 24
bad = [m for m in ("lightgbm", "sklearn", "onnxmltools", "skl2onnx", "scipy") if m in sys.modules]
print(bad)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_training_without_the_train_extra_says_what_to_install(data_dir: Path) -> None:
    # An edge install has no [train] extra: blocking two of its modules stands in for that.
    script = f"""
import sys
sys.modules["lightgbm"] = None
sys.modules["sklearn"] = None
sys.argv = ["bessai", "forecast", "train", "--prices",
            {str(data_dir / "cen_cmg_valdivia220_2023.tsv")!r}, "--out", "/nonexistent/m"]
from bessai.cli import main
main()
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 2
    assert "bessai forecast train needs the training libraries, missing: sklearn, lightgbm" in (
        out.stderr
    )
    assert "pip install 'bessai[train]'" in out.stderr


def test_predictor_caches_and_invalidates_on_a_price_jump(
    model_dirs: dict[str, Path], valdivia: PriceSeries
) -> None:
    clock = [0.0]
    p = Predictor(model_dirs["lgbm"], ttl_s=3600, change_abs=20, clock=lambda: clock[0])
    now = datetime(2023, 6, 1, 4, tzinfo=UTC)
    first = p.predict(valdivia.prices, now)
    assert len(first.timestamps) == 24
    assert first.timestamps[0] == pd.Timestamp(now)
    assert (first.p10 <= first.p50).all()
    assert (first.p50 <= first.p90).all()
    clock[0] = 1800
    later = p.predict(valdivia.prices, now + timedelta(hours=1))
    assert p.computed == 1
    assert len(later.timestamps) == 23
    jumped = valdivia.prices.copy()
    jumped.loc[pd.Timestamp(now)] += 300.0
    p.predict(jumped, now + timedelta(hours=1))
    assert p.computed == 2
    clock[0] = 10_000
    p.predict(jumped, now + timedelta(hours=1))
    assert p.computed == 3
    with pytest.raises(DataError, match="lacks"):
        p.predict(valdivia.prices.iloc[:100], now)


def test_fifteen_minute_horizon_is_96_steps(spring: PriceSeries, tmp_path: Path) -> None:
    fine = spring.resample(timedelta(minutes=15))
    spec = TrainSpec(model="ridge", issue_every_h=24, folds=2)
    fitted = fit_model(fine.values, fine.index, TZ, spec)
    data = training_set(fine.values, fine.index, TZ, spec)
    meta = {"node": fine.node, "unit": fine.unit, "timezone": TZ, "step_s": 900.0}
    write_model_dir(fitted, spec, tmp_path, x_check=data.x[-500:], y_check=data.y[-500:], meta=meta)
    f = Predictor(tmp_path).predict(fine.prices, datetime(2023, 4, 20, 4, 7, tzinfo=UTC))
    assert len(f.timestamps) == 96
    assert f.timestamps[0] == pd.Timestamp("2023-04-20 04:00", tz="UTC")


def test_eval_runs_the_model_and_baselines_through_the_backtest(
    model_dirs: dict[str, Path], valdivia: PriceSeries
) -> None:
    window = valdivia.between(None, datetime(2023, 6, 15, 4, tzinfo=UTC))
    results = evaluate(
        window,
        "lgbm",
        onnx_forecaster(OnnxModel(model_dirs["lgbm"])),
        StorageSpec(),
        first_day=date(2023, 6, 1),
        last_day=date(2023, 6, 10),
    )
    assert [r.name for r in results] == ["lgbm", "persistence", "week-mean"]
    for r in results:
        row = r.row()
        assert row["days"] == 10
        assert 0 <= row["coverage_10_90"] <= 1
        assert -1 <= row["kendall_tau_within_day"] <= 1
        assert r.metrics["pinball_50"] == pytest.approx(r.metrics["mae"] / 2)
    # Same days, same perfect-foresight yardstick for every strategy.
    assert len({r.backtest.perfect_daily_net for r in results}) == 1


def test_risk_mode_plans_on_the_models_own_bands(valdivia: PriceSeries) -> None:
    """A model whose bands say "anything can happen" is held idle by min_confidence; the
    week-mean baseline, judged on its empirical bands under the same risk, still trades."""
    week_mean = FORECASTERS["week-mean"]

    def unsure(history: pd.Series, target: pd.DatetimeIndex, tz: str) -> np.ndarray:
        p = week_mean(history, target, tz)
        return np.stack([p - 1000.0, p, p + 1000.0, p], axis=1)

    window = valdivia.between(None, datetime(2023, 6, 15, 4, tzinfo=UTC))
    days = {"first_day": date(2023, 6, 1), "last_day": date(2023, 6, 10)}
    risk = Risk(min_confidence=0.5)
    model, _, baseline = evaluate(window, "unsure", unsure, StorageSpec(), risk=risk, **days)
    assert model.name == "unsure"
    assert baseline.name == "week-mean"
    assert model.backtest.equivalent_full_cycles < 0.05
    assert baseline.backtest.equivalent_full_cycles > 1
    assert baseline.backtest.net_revenue > 100
    # Without the risk mode the same forecasts trade exactly like the week-mean.
    model, _, baseline = evaluate(window, "unsure", unsure, StorageSpec(), **days)
    assert model.backtest.net_revenue == pytest.approx(baseline.backtest.net_revenue)


def test_walk_forward_refit_trains_only_on_the_past(valdivia: PriceSeries) -> None:
    spec = TrainSpec(model="ridge", issue_every_h=24, folds=2)
    fc = refit_forecaster(spec, 3600.0)
    prices = valdivia.prices
    start = pd.Timestamp("2023-03-01 03:00", tz="UTC")
    target = pd.date_range(start, periods=24, freq="h")
    q1 = fc(prices[prices.index < start], target, TZ)
    # Changing anything at or after the forecast start changes nothing.
    poisoned = prices.copy()
    poisoned[poisoned.index >= start] = 9999.0
    fc2 = refit_forecaster(spec, 3600.0)
    q2 = fc2(poisoned[poisoned.index < start], target, TZ)
    np.testing.assert_array_equal(q1, q2)
    with pytest.raises(DataError, match="days of history"):
        refit_forecaster(spec, 3600.0)(prices.iloc[: 24 * 20], target, TZ)


def test_cli_train_predict_eval(tmp_path: Path, data_dir: Path) -> None:
    prices = str(data_dir / "cen_cmg_valdivia220_2023.tsv")
    out = tmp_path / "m"
    r = CliRunner().invoke(
        app,
        ["forecast", "train", "--prices", prices, "--kind", "ridge", "--out", str(out),
         "--from", "2023-02-01", "--to", "2023-04-30", "--folds", "2"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    card = json.loads((out / "card.json").read_text())
    assert card["data"]["first_day"] == "2023-02-01"
    assert card["data"]["last_day"] == "2023-04-30"
    assert card["versions"]["onnxruntime"] != "absent"
    assert card["calibration"]["scale"] == "std_168h"
    assert card["calibration"]["scale_floor"] > 0
    unscaled = tmp_path / "unscaled"
    r = CliRunner().invoke(
        app,
        ["forecast", "train", "--prices", prices, "--kind", "ridge", "--out", str(unscaled),
         "--from", "2023-02-01", "--to", "2023-04-30", "--folds", "2", "--band-scale", "none"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "scale" not in json.loads((unscaled / "card.json").read_text())["calibration"]
    r = CliRunner().invoke(
        app,
        ["forecast", "predict", "--model", str(out), "--prices", prices,
         "--now", "2023-05-02T04:00:00+00:00", "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["steps"]) == 24
    r = CliRunner().invoke(
        app,
        ["forecast", "eval", "--prices", prices, "--model", str(out),
         "--from", "2023-05-02", "--to", "2023-05-08", "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    rows = body["results"]
    assert [x["strategy"] for x in rows] == ["ridge", "persistence", "week-mean"]
    assert body["point"]["plan_on"] == "mean"
    # The same quantiles planned on the p50 instead: another plan, same forecast scores.
    r = CliRunner().invoke(
        app,
        ["forecast", "eval", "--prices", prices, "--model", str(out), "--plan-on", "p50",
         "--baseline-share", "0", "--from", "2023-05-02", "--to", "2023-05-08", "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    p50 = json.loads(r.stdout)
    assert p50["point"]["weights"] == [0.0, 1.0, 0.0]
    assert p50["results"][0]["mae"] == rows[0]["mae"]
    assert p50["results"][0]["net_revenue"] != rows[0]["net_revenue"]
    assert p50["results"][1:] == rows[1:]
    assert body["risk"] is None
    r = CliRunner().invoke(
        app,
        ["forecast", "eval", "--prices", prices, "--model", str(out), "--conservative",
         "--min-spread", "5", "--from", "2023-05-02", "--to", "2023-05-08", "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    risky = json.loads(r.stdout)
    assert risky["risk"] == {"min_spread": 5.0, "min_confidence": 0.0, "conservative": True}
    assert risky["results"][0]["net_revenue"] != rows[0]["net_revenue"]
    r = CliRunner().invoke(
        app,
        ["forecast", "eval", "--prices", prices, "--model", str(out), "--column",
         "costo_en_pesos", "--from", "2023-05-02", "--to", "2023-05-08"],
    )  # fmt: skip
    assert r.exit_code != 0
    assert "trained on USD/MWh, the prices are in CLP/kWh" in str(r.exception)
    r = CliRunner().invoke(
        app,
        ["forecast", "predict", "--model", str(tmp_path / "nope"), "--prices", prices],
    )
    assert r.exit_code != 0
    assert "cannot read the model card" in str(r.exception)
    card["features"] = card["features"][1:]
    (out / "card.json").write_text(json.dumps(card))
    with pytest.raises(DataError, match="trained on other features"):
        OnnxModel(out)


def test_gateway_planner_plans_on_the_trained_model_with_its_bands(
    model_dirs: dict[str, Path], data_dir: Path, tmp_path: Path
) -> None:
    from bessai.config import OptimizerConfig, SiteConfig
    from bessai.control.audit import AuditLog
    from bessai.control.planner import SchedulePlanner
    from bessai.control.site import SiteRunner
    from bessai.devices.registry import open_device

    audit = AuditLog(tmp_path / "audit.sqlite")
    site_config = SiteConfig(id="m1")
    site = SiteRunner(site_config, open_device(site_config), audit)
    config = OptimizerConfig(
        prices=str(data_dir / "cen_cmg_valdivia220_2023.tsv"),
        forecaster=f"model:{model_dirs['lgbm']}",
    )
    planner = SchedulePlanner(site, config)
    plan = planner.plan(datetime(2023, 4, 20, 12, 30, tzinfo=UTC), 50.0)
    assert plan.bands is not None
    assert len(plan.bands.p50) == len(plan.schedule) == 24
    assert all(
        lo <= mid <= hi
        for lo, mid, hi in zip(plan.bands.p10, plan.bands.p50, plan.bands.p90, strict=True)
    )
    # It plans on the card's plan price (mean of the bands shrunk to the week-mean), not p50.
    predicted = Predictor(model_dirs["lgbm"]).predict(
        planner.prices.prices, datetime(2023, 4, 20, 12, 30, tzinfo=UTC)
    )
    assert plan.forecast == tuple(float(x) for x in predicted.point)
    assert plan.forecast != tuple(float(x) for x in plan.bands.p50)
    assert plan.schedule.conservative_revenue is not None  # the bands reached the optimizer
    audit.close()


def test_plan_price_is_the_band_mean_shrunk_to_the_week_mean(
    model_dirs: dict[str, Path], valdivia: PriceSeries, tmp_path: Path
) -> None:
    now = datetime(2023, 6, 1, 4, tzinfo=UTC)
    f = Predictor(model_dirs["lgbm"]).predict(valdivia.prices, now)
    history = valdivia.prices[valdivia.prices.index < pd.Timestamp(now)]
    week_mean = FORECASTERS["week-mean"](history, f.timestamps, valdivia.timezone)
    swanson = 0.3 * f.p10 + 0.4 * f.p50 + 0.3 * f.p90
    np.testing.assert_allclose(f.point, 0.5 * swanson + 0.5 * week_mean, rtol=0, atol=1e-3)
    card = json.loads((model_dirs["lgbm"] / "card.json").read_text())
    assert card["point"] == {
        "plan_on": "mean",
        "weights": [0.3, 0.4, 0.3],
        "baseline": "week-mean",
        "baseline_share": 0.5,
    }
    # A card from before the rule planned on the p50, and still does.
    old = tmp_path / "old"
    old.mkdir()
    for item in model_dirs["lgbm"].iterdir():
        (old / item.name).write_bytes(item.read_bytes())
    del card["point"]
    (old / "card.json").write_text(json.dumps(card))
    g = Predictor(old).predict(valdivia.prices, now)
    np.testing.assert_array_equal(g.point, g.p50)
    card["point"] = {"plan_on": "mode", "baseline_share": 0.5}
    (old / "card.json").write_text(json.dumps(card))
    with pytest.raises(DataError, match=r"card\.json: forecast: plan_on must be one of"):
        Predictor(old)


def test_train_refuses_a_plan_share_outside_0_1(tmp_path: Path, data_dir: Path) -> None:
    r = CliRunner().invoke(
        app,
        ["forecast", "train", "--prices", str(data_dir / "cen_cmg_valdivia220_2023.tsv"),
         "--kind", "ridge", "--baseline-share", "1.5", "--out", str(tmp_path / "m")],
    )  # fmt: skip
    assert r.exit_code != 0
    assert "share of the week-mean in the plan price must be in 0..1, not 1.5" in str(r.exception)
    assert not (tmp_path / "m").exists()


def test_training_reports_progress_per_fold_and_quantile(spring: PriceSeries) -> None:
    spec = TrainSpec(model="lgbm", **SMALL)  # type: ignore[arg-type]
    seen: list[tuple[str, int, int]] = []
    fit_model(
        spring.values,
        spring.index,
        TZ,
        spec,
        on_progress=lambda stage, done, total: seen.append((stage, done, total)),
    )
    # Two folds and the final model, each three quantile models, one report after each.
    assert fit_steps(spec) == 9
    assert [done for _, done, _ in seen] == list(range(1, 10))
    assert {total for _, _, total in seen} == {9}
    assert [stage for stage, _, _ in seen[:3]] == [
        "validation fold 1/2: p10",
        "validation fold 1/2: p50",
        "validation fold 1/2: p90",
    ]
    assert seen[-1][0] == "final model: p90"
    assert fit_steps(TrainSpec(model="ridge", folds=4)) == 5
    assert fit_steps(TrainSpec(model="week-mean")) == 0
