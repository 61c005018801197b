"""A trained forecaster the gateway cannot run, or one trained on another unit than its prices,
stops the start with one line naming the site, the key and the problem (the check `bessai
forecast predict` makes), instead of crashing `bessai run` or planning on a USD model with EUR
prices."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bessai.config import OptimizerConfig, SiteConfig
from bessai.control.audit import AuditLog
from bessai.control.planner import SchedulePlanner
from bessai.control.site import SiteRunner
from bessai.errors import ConfigError
from bessai.market.export import write_model_dir
from bessai.market.predictor import check_model_dir
from bessai.market.prices import load_prices
from bessai.market.training import TrainSpec, fit_model, training_set
from tests.devices.fake import FakeDevice

VALDIVIA = "cen_cmg_valdivia220_2023.tsv"


@pytest.fixture(scope="module")
def ridge_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small USD/MWh Ridge model of Valdivia (hourly)."""
    series = load_prices(data_dir / VALDIVIA)
    spec = TrainSpec(model="ridge", issue_every_h=24, folds=2)
    fitted = fit_model(series.values, series.index, series.timezone, spec)
    data = training_set(series.values, series.index, series.timezone, spec)
    out = tmp_path_factory.mktemp("ridge")
    meta = {"node": series.node, "unit": series.unit, "timezone": series.timezone, "step_s": 3600.0}
    write_model_dir(fitted, spec, out, x_check=data.x[-500:], y_check=data.y[-500:], meta=meta)
    return out


def _planner(tmp_path: Path, prices: Path, forecaster: str) -> SchedulePlanner:
    audit = AuditLog(tmp_path / "audit.sqlite")
    site = SiteRunner(SiteConfig(id="m1"), FakeDevice(), audit)
    try:
        return SchedulePlanner(site, OptimizerConfig(prices=str(prices), forecaster=forecaster))
    finally:
        audit.close()


def _broken_copy(ridge_dir: Path, tmp_path: Path) -> Path:
    broken = tmp_path / "broken"
    shutil.copytree(ridge_dir, broken)
    return broken


def test_a_runnable_model_on_its_own_unit_is_accepted(
    ridge_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    check_model_dir(ridge_dir, "USD/MWh", 3600.0)
    planner = _planner(tmp_path, data_dir / VALDIVIA, f"model:{ridge_dir}")
    assert planner.predictor is not None


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        ("missing", "no such model directory"),
        ("card-not-json", "card.json: not JSON"),
        ("card-without-files", "the model card lacks 'files'"),
        ("onnx-corrupt", "point.onnx: not a model onnxruntime can load"),
        ("onnx-missing", "model file point.onnx named by the card is missing"),
    ],
)
def test_a_broken_model_directory_is_a_one_line_config_error(
    ridge_dir: Path, data_dir: Path, tmp_path: Path, damage: str, problem: str
) -> None:
    model = _broken_copy(ridge_dir, tmp_path)
    card = model / "card.json"
    if damage == "missing":
        shutil.rmtree(model)
    elif damage == "card-not-json":
        card.write_text("{ not json")
    elif damage == "card-without-files":
        doc = json.loads(card.read_text())
        del doc["files"]
        card.write_text(json.dumps(doc))
    elif damage == "onnx-corrupt":
        (model / "point.onnx").write_bytes(b"not a protobuf")
    else:
        (model / "point.onnx").unlink()
    with pytest.raises(ConfigError) as err:
        _planner(tmp_path, data_dir / VALDIVIA, f"model:{model}")
    message = str(err.value)
    assert message.startswith("site m1: optimizer.forecaster: ")
    assert problem in message
    assert "\n" not in message


def test_a_usd_model_is_refused_for_eur_prices(
    ridge_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as err:
        _planner(tmp_path, data_dir / "smard_day_ahead_prices_2018.csv", f"model:{ridge_dir}")
    assert str(err.value) == (
        f"site m1: optimizer.forecaster: {ridge_dir}: the model was trained on USD/MWh, the "
        "prices are in EUR/MWh; convert them first"
    )
    with pytest.raises(ConfigError, match=r"the model has a step of 3600\.0 s, the prices 900 s"):
        check_model_dir(ridge_dir, "USD/MWh", 900.0)


def test_bessai_run_stops_with_one_line_on_a_bad_model(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text(
        f"""
[gateway]
data_dir = "{tmp_path}"
http_port = 0
status_display = false

[[sites]]
id = "m1"

[[sites.devices]]
port = 0

[sites.simulator]
enabled = true

[sites.optimizer]
enabled = true
prices = "{data_dir / VALDIVIA}"
forecaster = "model:{tmp_path / "nowhere"}"
"""
    )
    out = subprocess.run(
        [sys.executable, "-m", "bessai.cli", "run", "--config", str(config), "--no-status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: site m1: optimizer.forecaster: {tmp_path / 'nowhere'}: no such model "
        "directory (write one with bessai forecast train)"
    ]
