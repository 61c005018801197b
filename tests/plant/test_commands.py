"""`bessai plant wear` prints the published model's fade for a cycling pattern."""

from __future__ import annotations

from typer.testing import CliRunner

from bessai.cli import app
from bessai.errors import ConfigError

runner = CliRunner()


def test_wear_table_for_standing_battery_is_pure_calendar_fade() -> None:
    result = runner.invoke(app, ["plant", "wear", "--years", "1", "--cycles-per-day", "0"])
    assert result.exit_code == 0, result.output
    # Naumann 2018 at 25 °C and 50 % SOC: 1.2571e-5 * 0.60225 * sqrt(365 d) = 4.25 %.
    assert "4.25" in result.output
    assert "95.75" in result.output


def test_wear_rejects_a_cycle_outside_the_soc_range() -> None:
    result = runner.invoke(app, ["plant", "wear", "--depth-pct", "90", "--center-soc-pct", "80"])
    assert isinstance(result.exception, ConfigError)
