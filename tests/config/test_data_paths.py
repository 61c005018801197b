"""Where data goes: one rule for relative paths, and a per-user data directory for the
embedded default that does not depend on the current directory (issue 13.3)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bessai.config import Config, default_data_dir, load_config
from bessai.control.audit import AuditLog, AuditRecord

ROOT = Path(__file__).resolve().parents[2]


def _bessai(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bessai.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_every_relative_path_is_relative_to_data_dir(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    config = etc / "site.toml"
    config.write_text(
        """
[gateway]
data_dir = "state"
[api]
keys_file = "keys.json"
[[sites]]
id = "a"
[sites.optimizer]
prices = "prices/cmg.csv"
forecaster = "model:models/crucero"
[sites.simulator]
scenario = "scenarios/heat.yaml"
[[sites]]
id = "b"
[sites.simulator]
scenario = "faults"
[telemetry]
outbox_path = "spool/outbox.sqlite"
[[telemetry.sinks]]
type = "lake"
path = "lake"
[[telemetry.sinks]]
type = "mqtt"
tls = true
ca_file = "pki/ca.pem"
cert_file = "/etc/bessai/client.pem"
key_file = "~/client.key"
[[telemetry.sinks]]
type = "nats"
tls_ca_file = "pki/nats-ca.pem"
"""
    )
    cfg, _ = load_config(config, environ={"HOME": str(tmp_path / "home")})
    data = etc / "state"
    assert cfg.gateway.data_dir == data  # data_dir itself: relative to the file's folder
    assert cfg.keys_file == data / "keys.json"
    assert cfg.telemetry.outbox_path == data / "spool" / "outbox.sqlite"
    lake, mqtt, nats = cfg.telemetry.sinks
    assert lake.type == "lake"
    assert lake.path == data / "lake"
    assert mqtt.type == "mqtt"
    assert mqtt.ca_file == data / "pki" / "ca.pem"
    assert mqtt.cert_file == Path("/etc/bessai/client.pem")  # absolute stays
    assert mqtt.key_file == Path.home() / "client.key"  # ~ expands
    assert nats.type == "nats"
    assert nats.tls_ca_file == data / "pki" / "nats-ca.pem"
    a, b = cfg.sites
    assert a.optimizer.prices == str(data / "prices" / "cmg.csv")
    assert a.optimizer.forecaster == f"model:{data / 'models' / 'crucero'}"
    assert a.simulator.scenario == str(data / "scenarios" / "heat.yaml")
    assert b.simulator.scenario == "faults"  # a built-in name, not a path
    assert b.optimizer.prices == "builtin:crucero-2023"


def test_defaults_live_in_data_dir(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text("[[sites]]\nid = 'a'\n")
    cfg, _ = load_config(config, environ={})
    assert cfg.gateway.data_dir == tmp_path / "var"
    assert cfg.keys_file == tmp_path / "var" / "api_keys.json"
    assert cfg.telemetry.outbox_path == tmp_path / "var" / "outbox.sqlite"


def _doc_toml(doc: str, after: str) -> str:
    text = (ROOT / "docs" / doc).read_text()
    block = text[text.index(after) :].split("```toml\n", 1)[1].split("```", 1)[0]
    return block


@pytest.mark.parametrize(
    ("source", "after"),
    [("docs/telemetry.md", "## Configuration"), ("examples/site.toml", "")],
)
def test_documented_examples_put_the_lake_and_outbox_in_data_dir(
    tmp_path: Path, source: str, after: str
) -> None:
    if source.startswith("docs/"):
        text = _doc_toml(source.removeprefix("docs/"), after) + "\n[[sites]]\nid = 'a'\n"
    else:
        text = (ROOT / source).read_text()
    config = tmp_path / "site.toml"
    config.write_text(text)
    cfg, _ = load_config(config, environ={})
    data = cfg.gateway.data_dir
    lakes = [s.path for s in cfg.telemetry.sinks if s.type == "lake"]
    assert lakes == [data / "lake"], f"{source}: {lakes} (data_dir {data})"
    assert cfg.telemetry.outbox_path == data / "outbox.sqlite"
    assert "var/var" not in str(lakes[0])
    assert tomllib.loads(text)  # the example itself is plain TOML


def test_the_embedded_default_uses_the_per_user_data_dir(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    assert default_data_dir({"XDG_DATA_HOME": str(xdg)}) == xdg / "bessai"
    assert default_data_dir({"HOME": "/home/op"}) == Path("/home/op/.local/share/bessai")
    # The XDG spec says a relative XDG_DATA_HOME is invalid: it is ignored.
    assert default_data_dir({"XDG_DATA_HOME": "rel", "HOME": "/h"}) == Path(
        "/h/.local/share/bessai"
    )
    cfg, _ = load_config(None, environ={"XDG_DATA_HOME": str(xdg)})
    assert cfg.gateway.data_dir == xdg / "bessai"
    assert cfg.keys_file == xdg / "bessai" / "api_keys.json"
    assert cfg.telemetry.outbox_path == xdg / "bessai" / "outbox.sqlite"
    lake = cfg.telemetry.sinks[0]
    assert lake.type == "lake"
    assert lake.path == xdg / "bessai" / "lake"
    over, keys = load_config(
        None, environ={"XDG_DATA_HOME": str(xdg), "BESSAI_GATEWAY__DATA_DIR": str(tmp_path / "d")}
    )
    assert over.gateway.data_dir == tmp_path / "d"
    assert keys == ["gateway.data_dir"]


def test_keys_added_from_anywhere_go_to_one_file_and_its_creation_is_said(
    tmp_path: Path, data_home: Path
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    keys_file = data_home / "bessai" / "api_keys.json"
    first = _bessai("keys", "add", "alice", cwd=one)
    assert first.returncode == 0, first.stderr
    assert f"created key file {keys_file}" in first.stderr
    second = _bessai("keys", "add", "bob", "--role", "control", cwd=two)
    assert second.returncode == 0, second.stderr
    assert "created key file" not in second.stderr
    assert f"added to {keys_file}" in second.stderr
    names = [k["name"] for k in json.loads(keys_file.read_text())["keys"]]
    assert names == ["alice", "bob"]
    listed = _bessai("keys", "list", cwd=tmp_path)
    assert "alice" in listed.stdout
    assert "bob" in listed.stdout
    assert not (one / "var").exists()
    assert not (two / "var").exists()


def test_audit_and_lake_query_find_the_default_data_dir_from_anywhere(
    tmp_path: Path, data_home: Path
) -> None:
    data = data_home / "bessai"
    audit = AuditLog(data / "audit.sqlite")
    audit.append(
        AuditRecord(
            ts=datetime(2026, 3, 1, 12, tzinfo=UTC),
            site="demo",
            controller="manual",
            reason="test",
            requested_w=1000.0,
            setpoint_w=1000.0,
            outcome="allowed",
            guard_reason="within limits",
            binding_limit=None,
            writes=[],
            verified=True,
        )
    )
    audit.close()
    out = _bessai("audit", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert [r["site"] for r in json.loads(out.stdout)] == ["demo"]

    missing = _bessai("lake", "query", "SELECT 1", cwd=tmp_path)
    assert missing.returncode == 2
    assert f"lake directory {data / 'lake'} does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.slow
def test_run_without_config_says_where_it_keeps_data_and_writes_nothing_here(
    tmp_path: Path, data_home: Path
) -> None:
    out = _bessai("run", "--duration-s", "4", "--http-port", "0", "--no-status", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    data = data_home / "bessai"
    assert f"created data directory {data}" in out.stdout
    assert (data / "audit.sqlite").exists()
    assert (data / "outbox.sqlite").exists()
    assert list(tmp_path.iterdir()) == [], "nothing may land in the current directory"
    again = _bessai("run", "--duration-s", "2", "--http-port", "0", "--no-status", cwd=tmp_path)
    assert f"data directory {data}" in again.stdout
    assert "created data directory" not in again.stdout
    # The lake sink of the embedded default flushes on stop: query it from elsewhere.
    lake = _bessai(
        "lake", "query", "SELECT count(*) AS n FROM telemetry", "--format", "json", cwd=ROOT
    )
    assert lake.returncode == 0, lake.stderr
    assert json.loads(lake.stdout)[0]["n"] > 0


README_SITE = """
[gateway]
http_port = 0
status_display = false
[[sites]]
id = "home"
cycle_s = 0.5
[sites.simulator]
enabled = true
[[sites.devices]]
port = 0
"""


def test_config_check_warns_when_telemetry_is_kept_nowhere(tmp_path: Path) -> None:
    bare = tmp_path / "bare.toml"
    bare.write_text(README_SITE)
    out = _bessai("config", "check", str(bare), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "warning: no [[telemetry.sinks]] configured: telemetry is kept nowhere" in out.stderr
    with_lake = tmp_path / "lake.toml"
    with_lake.write_text(README_SITE + '[[telemetry.sinks]]\ntype = "lake"\npath = "lake"\n')
    out = _bessai("config", "check", str(with_lake), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "kept nowhere" not in out.stderr


@pytest.mark.slow
def test_run_without_sinks_says_so_and_stores_nothing(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text(README_SITE)
    out = _bessai("run", "--config", str(config), "--duration-s", "3", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "warning: no [[telemetry.sinks]] configured: telemetry is kept nowhere" in out.stdout
    with sqlite3.connect(tmp_path / "var" / "outbox.sqlite") as db:
        assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM site_seq").fetchone() == (0,)


def test_a_config_built_in_code_holds_absolute_paths_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = Config.model_validate({"sites": [{"id": "a"}], "api": {"keys_file": "k.json"}})
    assert cfg.gateway.data_dir == tmp_path / "var"
    assert cfg.telemetry.outbox_path == tmp_path / "var" / "outbox.sqlite"
    assert cfg.keys_file == tmp_path / "var" / "k.json"
    # Validating a dump again changes nothing (the paths are absolute by then).
    assert Config.model_validate(cfg.model_dump()) == cfg
