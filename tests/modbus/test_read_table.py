"""`bessai read` prints what the device sent as text: a model name or an error that looks like
rich markup is shown as it is, never styled or swallowed."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from bessai.modbus.commands import _print_table
from bessai.modbus.profile import load_profile
from bessai.modbus.results import PollResult, Reading


def test_device_strings_are_printed_as_text() -> None:
    profile = load_profile("huawei_sun2000")
    model = profile.point("model_name")
    sn = profile.point("serial_number")
    now = datetime.now(UTC)
    result = PollResult(
        readings={
            "a": Reading(profile.name, model, "[red]SUN2000[/]", None, now),
            "b": Reading(profile.name, sn, None, None, now, error="[bold]bad[/bold] reply"),
        },
        errors=["[blink]unit 1[/blink] timed out"],
    )
    console = Console(record=True, width=200, color_system=None)
    _print_table(result, console)
    text = console.export_text()
    assert "[red]SUN2000[/]" in text
    assert "error: [bold]bad[/bold] reply" in text
    assert "[blink]unit 1[/blink] timed out" in text
