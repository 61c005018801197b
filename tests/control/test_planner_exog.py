"""A site whose trained forecaster reads an exogenous input (the programmed CMg): the planner
feeds it from the file the operator refreshes with `bessai market fetch`, falls back to
`optimizer.fallback_forecaster` when the file is missing or does not cover the hours ahead
(saying why in the log and the schedule status) and plans on the model again once it does; a
configuration that cannot work stops the start with one line naming the key."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from structlog.testing import capture_logs

from bessai.api.views import schedule_view
from bessai.config import OptimizerConfig, SiteConfig, load_config
from bessai.control.audit import AuditLog
from bessai.control.planner import SchedulePlanner
from bessai.control.site import SiteRunner
from bessai.errors import ConfigError
from bessai.market.baselines import FORECASTERS
from bessai.market.datasets import ExogSource, load_exog
from bessai.market.export import write_model_dir
from bessai.market.predictor import Predictor
from bessai.market.prices import PriceSeries, load_prices
from bessai.market.training import TrainSpec, fit_model, training_set
from tests.devices.fake import FakeDevice
from tests.market.exog_files import BUS, programmed_file

VALDIVIA = "cen_cmg_valdivia220_2023.tsv"
NOW = datetime(2023, 4, 10, 12, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def valdivia(data_dir: Path) -> PriceSeries:
    return load_prices(data_dir / VALDIVIA)


@pytest.fixture(scope="module")
def model_dir(valdivia: PriceSeries, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Ridge model of Valdivia reading the programmed CMg (`cmg_prog`)."""
    files = tmp_path_factory.mktemp("train")
    spring = valdivia.between(valdivia.index[0], datetime(2023, 4, 1, 3, tzinfo=UTC))
    inputs, frame = load_exog(
        [ExogSource("cmg_prog", programmed_file(valdivia, files), BUS)], spring.index
    )
    spec = TrainSpec(model="ridge", issue_every_h=12, folds=2, exog=inputs)
    data = training_set(spring.values, spring.index, spring.timezone, spec, exog=frame)
    fitted = fit_model(spring.values, spring.index, spring.timezone, spec, data=data)
    out = tmp_path_factory.mktemp("model")
    meta = {"node": spring.node, "unit": spring.unit, "timezone": spring.timezone,
            "step_s": 3600.0}  # fmt: skip
    write_model_dir(fitted, spec, out, x_check=data.x[-200:], y_check=data.y[-200:], meta=meta)
    return out


def _planner(tmp_path: Path, data_dir: Path, **optimizer: object) -> SchedulePlanner:
    site = SiteRunner(SiteConfig(id="m1"), FakeDevice(), AuditLog(tmp_path / "audit.sqlite"))
    config = OptimizerConfig(prices=str(data_dir / VALDIVIA), **optimizer)  # type: ignore[arg-type]
    return SchedulePlanner(site, config)


def test_the_planner_feeds_the_model_falls_back_and_recovers(
    model_dir: Path, valdivia: PriceSeries, data_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "fresh").mkdir()
    fresh = programmed_file(valdivia, tmp_path / "fresh", "2023-04-14")
    live = tmp_path / "cen" / fresh.name  # the file the operator's fetch refreshes
    live.parent.mkdir()
    shutil.copy(fresh, live)
    planner = _planner(
        tmp_path, data_dir, forecaster=f"model:{model_dir}",
        exog=[{"name": "cmg_prog", "file": live}],
    )  # fmt: skip
    plan = planner.plan(NOW, 50.0)
    assert (plan.forecaster, plan.forecaster_note) == (f"model:{model_dir}", None)
    _, frame = load_exog([ExogSource("cmg_prog", live, BUS)], valdivia.index)
    expected = Predictor(model_dir).predict(valdivia.prices, NOW, exog=frame)
    assert plan.forecast == tuple(float(x) for x in expected.point)

    # A day later (past the forecast the predictor keeps for an hour), and the operator's
    # fetch stopped on 5 April: the hours ahead read 11 April, not there.
    stale = programmed_file(valdivia, tmp_path, "2023-04-05")
    shutil.copy(stale, live)
    later = datetime(2023, 4, 11, 14, 30, tzinfo=UTC)
    with capture_logs() as logs:
        plan = planner.plan(later, 50.0)
        again = planner.plan(later + timedelta(hours=1), 50.0)
    assert again.forecaster == "week-mean"
    said = [e for e in logs if e["event"] == "forecaster falls back"]
    assert len(said) == 1  # once per reason, not every 15 minutes
    assert said[0]["log_level"] == "warning"
    assert said[0]["reason"] == plan.forecaster_note
    assert plan.forecaster == "week-mean"
    assert plan.forecaster_note is not None
    assert "'cmg_prog' has no value for 2023-04-11 04:00 UTC" in plan.forecaster_note
    history = valdivia.prices[valdivia.prices.index < later]
    week_mean = FORECASTERS["week-mean"](history, plan_index(later), valdivia.timezone)
    np.testing.assert_allclose(plan.forecast, week_mean)
    # The schedule status says it.
    planner.last_plan = plan
    planner.site.schedule.load(plan.schedule, plan.start, later, plan.bands)
    view = schedule_view(planner.site, later, planner)
    assert view.forecaster == "week-mean"
    assert view.forecaster_note == plan.forecaster_note

    # The file is gone (the fetch is rewriting it): still a plan, on the fallback.
    live.unlink()
    plan = planner.plan(datetime(2023, 4, 12, 15, 30, tzinfo=UTC), 50.0)
    assert plan.forecaster == "week-mean"
    assert plan.forecaster_note is not None
    assert "no such file" in plan.forecaster_note
    # Refreshed: back on the model, at the next plan.
    shutil.copy(fresh, live)
    plan = planner.plan(datetime(2023, 4, 13, 16, 30, tzinfo=UTC), 50.0)
    assert (plan.forecaster, plan.forecaster_note) == (f"model:{model_dir}", None)


def plan_index(now: datetime) -> pd.DatetimeIndex:
    return pd.date_range(pd.Timestamp(now).floor("h"), periods=24, freq="h")


def test_a_configuration_that_cannot_work_is_named(
    model_dir: Path, valdivia: PriceSeries, data_dir: Path, tmp_path: Path
) -> None:
    live = programmed_file(valdivia, tmp_path)
    with pytest.raises(ConfigError) as missing:
        _planner(tmp_path, data_dir, forecaster=f"model:{model_dir}")
    assert str(missing.value) == (
        f"site m1: optimizer.exog: the model needs the exogenous input(s) cmg_prog (dataset "
        f'cmg-programmed, key {BUS}): add optimizer.exog = [{{name = "cmg_prog", file = '
        '"cen_cmg_programmed_....csv"}] (files from bessai market fetch --dataset)'
    )
    with pytest.raises(ConfigError, match=r"^site m1: optimizer.exog\[0\] \(cmg_prog\): .*no "
                       "such file"):  # fmt: skip
        _planner(tmp_path, data_dir, forecaster=f"model:{model_dir}",
                 exog=[{"name": "cmg_prog", "file": tmp_path / "nope.csv"}])  # fmt: skip
    two = [{"name": "cmg_prog", "file": live}, {"name": "demand", "file": live}]
    with pytest.raises(ConfigError, match=r"optimizer.exog\[1\] \(demand\): the model reads no "
                       "input 'demand'"):  # fmt: skip
        _planner(tmp_path, data_dir, forecaster=f"model:{model_dir}", exog=two)
    with pytest.raises(ConfigError, match=r"optimizer.exog\[0\] \(cmg_prog\): key 'CRUCERO"):
        _planner(tmp_path, data_dir, forecaster=f"model:{model_dir}",
                 exog=[{"name": "cmg_prog", "file": live, "key": "CRUCERO_______220"}])  # fmt: skip
    with pytest.raises(ConfigError, match=r"optimizer.fallback_forecaster 'lgbm' is not one"):
        _planner(tmp_path, data_dir, forecaster=f"model:{model_dir}", fallback_forecaster="lgbm",
                 exog=[{"name": "cmg_prog", "file": live}])  # fmt: skip


def test_exog_in_a_toml_file(model_dir: Path, valdivia: PriceSeries, tmp_path: Path) -> None:
    """A relative file is under gateway.data_dir (the one path rule); exog without a model is
    an error naming the key."""
    programmed_file(valdivia, tmp_path)
    site = (
        '[[sites]]\nid = "s1"\n[sites.optimizer]\nenabled = true\n'
        f'forecaster = "model:{model_dir}"\n'
        'exog = [{name = "cmg_prog", file = "cen_cmg_programmed_2023-01-01_2023-04-14.csv"}]\n'
    )
    path = tmp_path / "site.toml"
    path.write_text(site)
    config, _ = load_config(path)
    assert config.sites[0].optimizer.exog[0].file == tmp_path / "var" / (
        "cen_cmg_programmed_2023-01-01_2023-04-14.csv"
    )
    path.write_text(site.replace(f"model:{model_dir}", "week-mean"))
    with pytest.raises(ConfigError, match=r"optimizer.*exog: forecaster 'week-mean' reads no"):
        load_config(path)
