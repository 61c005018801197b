"""`bessai policy eval` with the committed policy (no PyTorch needed), and the one-line answer of
the training commands where PyTorch is missing."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from bessai.cli import app
from bessai.errors import BessaiError
from tests.conftest import DATA
from tests.policy.conftest import POLICY

runner = CliRunner()


def test_eval_puts_the_policy_beside_the_lp_and_the_rule() -> None:
    result = runner.invoke(
        app,
        ["policy", "eval", "--model", str(POLICY), "--prices",
         str(DATA / "cen_cmg_crucero220_2019-2023.csv"), "--from", "2023-07-01",
         "--to", "2023-07-04", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {r["forecaster"]: r for r in json.loads(result.stdout)}
    # The committed policy reads recent-mean-ar re-made every hour: so does the LP it meets.
    assert set(rows) == {"ppo", "recent-mean-ar", "rule"}
    assert rows["recent-mean-ar"]["replan"] == {
        "every_steps": 1,
        "lag_steps": 1,
        "scenario_days": 0,
    }
    for row in rows.values():
        assert row["days"] == 4
        assert row["perfect_daily_net"] == rows["ppo"]["perfect_daily_net"]
    assert rows["ppo"]["net_revenue"] > 0
    assert rows["ppo"]["equivalent_full_cycles"] > 1


def test_eval_table_names_the_strategies() -> None:
    result = runner.invoke(
        app,
        ["policy", "eval", "--model", str(POLICY), "--prices",
         str(DATA / "cen_cmg_valdivia220_2023.tsv"), "--to", "2023-01-03"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for name in ("ppo", "LP + recent-mean-ar (re-planned every", "rule", "capture vs daily", "EFC"):
        assert name in result.stdout


def test_eval_of_the_policy_alone_on_another_market() -> None:
    # SMARD zones (EUR/MWh) are nodes the committed policy never saw: a transfer check.
    result = runner.invoke(
        app,
        ["policy", "eval", "--model", str(POLICY), "--prices",
         str(DATA / "smard_day_ahead_prices_2018.csv"), "--column", "France",
         "--from", "2018-03-01", "--to", "2018-03-03", "--no-baselines", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["forecaster"] == "ppo"
    assert row["days"] == 3
    assert row["currency"] == "EUR"
    assert 0 < row["capture_vs_daily_perfect"] <= 1


def test_a_missing_model_is_one_line() -> None:
    result = runner.invoke(
        app,
        ["policy", "eval", "--model", "/nonexistent/policy", "--prices",
         str(DATA / "cen_cmg_valdivia220_2023.tsv")],
    )  # fmt: skip
    # `bessai` (cli.main) prints a BessaiError as one line without a traceback.
    assert isinstance(result.exception, BessaiError)
    assert str(result.exception) == "policy directory /nonexistent/policy does not exist"


@pytest.mark.parametrize("command", ["train", "check"])
def test_training_commands_without_torch_say_what_to_install(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    args = ["--prices", "x.csv", "--out", "o"] if command == "train" else ["--model", "m"]
    result = runner.invoke(app, ["policy", command, *args])
    assert isinstance(result.exception, BessaiError)
    assert f"policy {command} needs PyTorch: pip install 'bessai[rl]'" in str(result.exception)
