"""Text from users, devices and files in the terminal: shown exactly as stored, never as rich
markup, emoji codes or links, in every CLI table and line; and the live status table readable
at 80 columns. Hostile strings go in the way a user would put them (an override reason through
the API, a key name in a hand-edited file, a lake row, a configuration value)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from bessai.api.keys import KeyStore, Role
from bessai.observe.status import WIDE_MIN_COLUMNS, status_table
from bessai.runtime.commands import _watch
from bessai.telemetry import Record, TelemetryConfig, TelemetryPipeline

from .conftest import ApiHarness, wait_for

FAKE_ALARM = "[bold red]FAKE ALARM[/] :x: [link=http://evil.example]click[/link]"
UNBALANCED = "oops [/bold] unbalanced"
HOSTILE = f"{FAKE_ALARM} {UNBALANCED}"
URLS = ["dashboard http://127.0.0.1:8000/", "health http://127.0.0.1:8000/health"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
OSC_LINK = "\x1b]8;"


def bessai(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, on a wide colour terminal (FORCE_COLOR: rich styles and
    links as it would on a TTY, so a link or style made from data would show up)."""
    env = {**os.environ, "COLUMNS": "400", "FORCE_COLOR": "1"}
    env.pop("NO_COLOR", None)
    return subprocess.run(
        [sys.executable, "-m", "bessai.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def plain(output: str) -> str:
    assert OSC_LINK not in output  # no clickable link made from data
    assert "❌" not in output  # ':x:' is not an emoji code here
    return ANSI.sub("", output)


async def override(api: ApiHarness, reason: str, setpoint_w: float = -1500) -> None:
    async with api.client(headers=api.auth("control")) as client:
        r = await client.post(
            "/api/v1/sites/t1/override",
            json={"setpoint_w": setpoint_w, "duration_s": 600, "reason": reason},
        )
    assert r.status_code == 200, r.text
    site = api.gateway.sites["t1"]
    await wait_for(lambda: site.last is not None and site.last.proposal.controller == "manual")


def render(view: Any, width: int, terminal: bool = False) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO(), force_terminal=terminal)
    console.print(view)
    text = console.export_text(styles=terminal)
    return text.rstrip("\n").split("\n")


# -- the live status table -----------------------------------------------------------------------


async def test_status_table_is_readable_at_80_columns(make_api: Callable[..., Any]) -> None:
    api = await make_api()
    await override(api, "top up before the evening peak, as agreed with the site manager")
    record = api.gateway.sites["t1"].last
    assert record is not None
    view = status_table(api.monitor, URLS)  # the same record: nothing awaited in between
    m = record.measurements
    assert m.soc_pct is not None
    assert m.battery_temp_c is not None
    expected = [
        "t1",
        f"{m.soc_pct:.1f} %",
        f"{(m.battery_power_w or 0) / 1000:+.2f} kW",
        f"{(m.pv_power_w or 0) / 1000:+.2f} kW",
        f"{(m.grid_power_w or 0) / 1000:+.2f} kW",
        f"{m.battery_temp_c:.1f} °C",
        record.safety_state.value,
        f"{record.decision.setpoint_w / 1000:+.2f} kW {record.decision.outcome.value}",
        f"#{record.cycle} ",
        "manual: top up before the evening peak",
        "fleet: 1 site(s), 15 kWh",
        *URLS,
    ]
    narrow = render(view, 80)
    print("\n".join(narrow))
    assert max(len(line) for line in narrow) <= 80, narrow
    text = "\n".join(narrow)
    for value in expected:
        assert value in text, value
    assert "controller" not in narrow[0]  # the reason is under the table, not a squeezed column
    # The measurements of a site stay on its one row.
    (row,) = [line for line in narrow if line.startswith("t1 ")]
    for value in expected[1:7]:
        assert value in row, value
    wide = render(view, 200)
    print("\n".join(wide))
    assert max(len(line) for line in wide) <= 200
    assert all(name in wide[0] for name in ("controller", "setpoint", "cycle"))
    (wide_row,) = [line for line in wide if line.startswith("t1 ")]
    for value in expected[1:9]:
        assert value in wide_row, value
    assert len(wide) < len(narrow)  # wide, everything fits on fewer lines
    assert WIDE_MIN_COLUMNS > 80


async def test_status_table_shows_hostile_reasons_as_stored(make_api: Callable[..., Any]) -> None:
    api = await make_api()
    await override(api, HOSTILE)
    view = status_table(api.monitor, URLS)
    for width in (80, 120, WIDE_MIN_COLUMNS, 400):
        lines = render(view, width, terminal=True)
        assert max(len(line) for line in plain("\n".join(lines)).split("\n")) <= width
    wide = plain("\n".join(render(view, 400, terminal=True)))
    assert f"manual: {HOSTILE} (by control-key)" in wide
    narrow = plain("\n".join(render(view, 80, terminal=True)))
    for token in ("[bold", "red]FAKE", "[/]", ":x:", "[link=http://evil.example]click[/link]"):
        assert token in narrow, token


async def test_live_status_keeps_refreshing_after_a_hostile_reason(
    make_api: Callable[..., Any],
) -> None:
    api = await make_api()
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=True, force_interactive=True)
    watcher = asyncio.create_task(_watch(api.runtime, console, URLS, live=True))
    try:
        await asyncio.sleep(1.0)
        await override(api, HOSTILE)
        installed_at = len(out.getvalue())
        site = api.gateway.sites["t1"]
        first = site.counters.cycles
        await wait_for(lambda: site.counters.cycles >= first + 10)
        await asyncio.sleep(1.5)  # at least two refreshes of the display after that
    finally:
        api.gateway.stop_event.set()
        await asyncio.wait_for(watcher, timeout=5)
    after = plain(out.getvalue()[installed_at:])
    shown = [int(n) for n in re.findall(r"#(\d+) \d+ ms", after)]
    assert shown, after[-2000:]
    assert max(shown) >= first + 8  # the display followed the cycles after the override
    for token in ("FAKE", ":x:", "[/bold]"):
        assert token in after, token


# -- CLI tables and lines ------------------------------------------------------------------------


async def test_audit_shows_reasons_as_stored(make_api: Callable[..., Any]) -> None:
    api = await make_api()
    await override(api, HOSTILE)
    data_dir = api.gateway.config.gateway.data_dir
    result = await asyncio.to_thread(bessai, "audit", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    shown = plain(result.stdout)
    assert f"api: override -1500 W for 600 s: {HOSTILE} (key 'control-key')" in shown
    assert f"manual: {HOSTILE} (by control-key)" in shown
    assert "Traceback" not in result.stderr


def test_keys_list_shows_names_as_stored(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    KeyStore(keys_file).add("ops", Role.READ)
    data = json.loads(keys_file.read_text())
    data["keys"][0]["name"] = HOSTILE  # a hand-edited file: the CLI refuses such names itself
    keys_file.write_text(json.dumps(data))
    result = bessai("keys", "list", "--keys-file", str(keys_file))
    assert result.returncode == 0, result.stderr
    assert HOSTILE in plain(result.stdout)


async def test_lake_query_shows_values_as_stored(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    cfg = TelemetryConfig.model_validate(
        {
            "outbox_path": tmp_path / "o.sqlite",
            "sinks": [{"type": "lake", "path": str(lake), "flush_interval_s": 0}],
        }
    )
    pipeline = TelemetryPipeline(cfg)
    await pipeline.start()
    ts = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    await pipeline.emit_async([Record("alpha", {"mode": "1:x:2", "note": HOSTILE}, ts=ts)])
    assert await pipeline.drain(5.0)
    await pipeline.stop()
    sql = 'SELECT mode AS "a:x:b", note FROM telemetry'
    result = await asyncio.to_thread(bessai, "lake", "query", sql, "--lake", str(lake))
    assert result.returncode == 0, result.stderr
    shown = plain(result.stdout)
    assert "1:x:2" in shown
    assert "a:x:b" in shown
    assert HOSTILE in shown


def test_error_lines_quote_input_as_given(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    KeyStore(keys_file).add("ops", Role.READ)
    result = bessai("keys", "revoke", HOSTILE, "--keys-file", str(keys_file))
    assert result.returncode == 2
    line = plain(result.stderr).rstrip("\n")
    assert line == f"error: no key named '{HOSTILE}' in {keys_file} (keys: ops)"
    config = tmp_path / "site.toml"
    config.write_text(f'[[sites]]\nid = "a"\ntimezone = "{FAKE_ALARM}"\n')
    result = bessai("config", "check", str(config))
    assert result.returncode == 2
    assert f"unknown timezone '{FAKE_ALARM}'" in plain(result.stderr)
    assert "Traceback" not in result.stderr


def test_config_check_shows_values_as_stored(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text(f'[[sites]]\nid = "a"\nname = "{HOSTILE}"\n')
    result = bessai("config", "check", str(config))
    assert result.returncode == 0, result.stderr
    assert f'name = "{HOSTILE}"' in plain(result.stdout)


def test_keys_commands_on_a_damaged_file_are_one_line(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    keys_file.write_text('{"keys": [')
    for args in (("list",), ("add", "ops"), ("revoke", "ops")):
        result = bessai("keys", *args, "--keys-file", str(keys_file))
        assert result.returncode == 2, args
        lines = plain(result.stderr).strip().split("\n")
        assert lines == [
            f"error: API keys file {keys_file} is damaged: not valid JSON (Expecting value: "
            "line 1 column 11 (char 10)); fix it, or move it away and re-create the keys "
            "with `bessai keys add`"
        ], args
    assert keys_file.read_text() == '{"keys": ['  # left as it was, for the operator to look at


def test_write_refuses_a_non_finite_value_in_one_line() -> None:
    # Port 9 has no server: the value is refused before any connection is tried.
    for value in ("nan", "inf", "1e400", "-Infinity"):
        result = bessai("write", "forcible_charge_power_w", "--port", "9", "--", value)
        assert result.returncode == 2, (value, result.stderr)
        lines = plain(result.stderr).strip().split("\n")
        assert lines == [
            f"error: forcible_charge_power_w: value '{value}' is not a finite number; give it "
            "in the point's unit (e.g. 2500) or as an enum label"
        ], value
