"""`bessai policy teach`: the LP's dispatch as demonstrations for the learned policy (no PyTorch
needed), read back and checked against the observation the policy is trained on."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bessai.cli import app
from bessai.errors import ConfigError
from bessai.market.prices import load_prices
from bessai.policy.card import PolicyCard
from bessai.policy.demonstrations import joined, load_demonstrations
from bessai.policy.observation import SiteView, observation
from bessai.policy.windows import forecaster_named, step_windows
from tests.conftest import DATA

CRUCERO = DATA / "cen_cmg_crucero220_2019-2023.csv"


@pytest.fixture(scope="module")
def taught(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("teach") / "demos.npz"
    result = CliRunner().invoke(
        app,
        ["policy", "teach", "--prices", str(CRUCERO), "--from", "2023-03-01", "--to",
         "2023-03-03", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "72 steps of LP + recent-mean-ar, re-planned every step" in result.stdout
    return out


def test_the_demonstrations_are_what_the_lp_did_step_by_step(taught: Path) -> None:
    demos = load_demonstrations(taught)
    assert demos.meta["forecaster"] == "recent-mean-ar"
    assert demos.meta["lag_steps"] == 1
    assert demos.meta["period"] == "2023-03-01 .. 2023-03-03"
    assert len(demos.action) == 72
    assert np.all(np.abs(demos.action) <= 1.0)
    # The LP trades: it charges and discharges at full power in these three days.
    assert demos.action.max() > 0.9
    assert demos.action.min() < -0.9
    # Each step's SOC is what the step before left: charging raises the next step's SOC.
    moved = np.diff(demos.soc)
    assert np.all(moved[demos.action[:-1] > 0.05] > 0)
    assert np.all(moved[demos.action[:-1] < -0.05] < 0)
    assert demos.soc[0] == pytest.approx(0.5)
    # The windows are the forecast the policy reads at each step (re-made, 1 h late).
    series = load_prices(CRUCERO)
    start = int(np.searchsorted(series.index, series.index[series.index >= "2023-03-01 03:00Z"][0]))
    want = step_windows(series, start, 72, 25, (forecaster_named("recent-mean-ar"), 1))
    np.testing.assert_allclose(demos.windows_usd_mwh, want)


def test_their_observations_are_the_gateways(taught: Path) -> None:
    demos = load_demonstrations(taught)
    card = PolicyCard(24, 1.0, 100.0, 4.0, "0" * 64, layout=2, forecaster="recent-mean-ar",
                      lag_steps=1)  # fmt: skip
    obs = demos.observations(card.price_scale_usd_mwh)
    for t in (0, 17, 71):
        hour = demos.hour_utc[t]
        now = datetime(2023, 3, 2, int(hour), round(hour % 1 * 60), tzinfo=UTC)
        view = SiteView(demos.soc[t] * 100.0, 25.0, tuple(demos.windows_usd_mwh[t]), now)
        np.testing.assert_allclose(obs[t], observation(view, card), atol=1e-6)
    np.testing.assert_allclose(demos.observations(100.0, 2.0)[:, 2:27], obs[:, 2:27] * 2, rtol=1e-6)


def test_demonstrations_of_another_observation_are_refused(taught: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"demos.npz: lag_steps is 1, the policy being trained"):
        joined([taught], {"forecaster": "recent-mean-ar", "lag_steps": 6})
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not numpy")
    with pytest.raises(ConfigError, match=r"bad.npz: not a demonstrations file"):
        load_demonstrations(bad)
    with pytest.raises(ConfigError, match="no such demonstrations file"):
        load_demonstrations(tmp_path / "missing.npz")
    both = joined([taught, taught], {"forecaster": "recent-mean-ar", "duration_h": 4.0})
    assert len(both.action) == 144


def test_an_unwritable_out_is_named_before_the_lp_runs(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    result = CliRunner().invoke(
        app,
        ["policy", "teach", "--prices", str(CRUCERO), "--from", "2023-03-01", "--to",
         "2023-12-31", "--out", str(blocker / "demos.npz")],
    )  # fmt: skip
    assert isinstance(result.exception, ConfigError)
    assert "--out" in str(result.exception)
    assert "cannot create its directory" in str(result.exception)


def test_a_teacher_with_wear_plans_as_a_site_does(taught: Path, tmp_path: Path) -> None:
    from bessai.plant.degradation import cycle_wear_cost_per_mwh

    out = tmp_path / "worn.npz"
    result = CliRunner().invoke(
        app,
        ["policy", "teach", "--prices", str(CRUCERO), "--from", "2023-03-01", "--to",
         "2023-03-03", "--out", str(out), "--replacement-cost-usd-per-kwh", "300"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    worn, free = load_demonstrations(out), load_demonstrations(taught)
    assert worn.meta["replacement_cost_usd_per_kwh"] == 300.0
    assert worn.meta["degradation_per_mwh"] == pytest.approx(cycle_wear_cost_per_mwh(300.0))
    assert free.meta["degradation_per_mwh"] == 0.0
    # Wear makes the LP leave the thinnest spreads alone: no more throughput than without.
    assert np.abs(worn.action).sum() <= np.abs(free.action).sum() + 1e-9
    with pytest.raises(ConfigError, match=r"replacement_cost_usd_per_kwh is 300\.0"):
        joined([out], {"replacement_cost_usd_per_kwh": 0.0})
