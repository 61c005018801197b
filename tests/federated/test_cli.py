"""`bessai fl` options, the status file and the fl_* metrics (no Flower process)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from bessai.cli import app
from bessai.federated.metrics import FlMetrics
from bessai.federated.processes import Tls, node_config_text
from bessai.federated.server import RoundReport
from bessai.federated.status import StatusFile

runner = CliRunner()


def test_status_file_and_metrics(tmp_path: Path) -> None:
    status = StatusFile(tmp_path / "status.json")
    status.start(2)
    status.round(RoundReport(1, "moments", 3, 3, ()))
    status.round(RoundReport(2, "gram", 3, 2, (7,)))
    status.round(RoundReport(2, "done", 0, 0, (), 123.5))
    status.finish(str(tmp_path / "model"), 123.5, ["a", "b"])
    result = runner.invoke(app, ["fl", "status", "--work-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["state"] == "done"
    assert data["rounds"][1]["dropped"] == [7]
    assert data["rounds"][1]["finished_utc"].endswith("Z")
    prom = runner.invoke(app, ["fl", "status", "--work-dir", str(tmp_path), "--prometheus"])
    assert "fl_rounds_total 2.0" in prom.output
    assert "fl_train_loss 123.5" in prom.output


def test_metrics_count_rounds_once() -> None:
    m = FlMetrics()
    assert "fl_train_loss NaN" in m.text()
    m.update({"rounds_total": 2})
    m.update({"rounds_total": 3, "train_loss": 9.0})
    assert "fl_rounds_total 3.0" in m.text()
    assert "fl_train_loss 9.0" in m.text()


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["fl", "status", "--work-dir", str(tmp_path)])
    assert missing.exit_code != 0
    assert "no status file" in str(missing.exception)
    bad = runner.invoke(app, ["fl", "serve", "--out", str(tmp_path / "m"), "--model", "gbm"])
    assert "choose ridge or mlp" in str(bad.exception)
    no_tls = runner.invoke(app, ["fl", "serve", "--out", str(tmp_path / "m")])
    assert "--ssl-certfile" in str(no_tls.exception)
    no_file = runner.invoke(
        app, ["fl", "join", "--superlink", "127.0.0.1:1", "--prices", "nope.csv", "--site", "x"]
    )
    assert "no such price file" in str(no_file.exception)


def test_flower_arguments() -> None:
    assert Tls(insecure=True).client_args() == ["--insecure"]
    assert Tls(ca=Path("ca.pem")).client_args() == ["--root-certificates", "ca.pem"]
    assert node_config_text({"site": "a b", "prices": "/x/y.csv"}) == 'site="a b" prices="/x/y.csv"'
