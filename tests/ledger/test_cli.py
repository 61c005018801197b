"""`bessai ledger ...` end to end: keys, a transfer, a bundle, and `verify` failing with exit
code 1 and a one-line reason when the log was tampered with."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from bessai.cli import app
from tests.ledger.conftest import World

runner = CliRunner()


def _run(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def _console(*args: str | Path) -> tuple[int, str]:
    """Through the console entry point, as a user runs it (errors become one line)."""
    done = subprocess.run(
        [sys.executable, "-m", "bessai.cli", *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_keygen_writes_a_0600_key_and_its_public_half(tmp_path: Path) -> None:
    code, out = _run("ledger", "keygen", tmp_path / "site.key")
    assert code == 0, out
    assert stat.S_IMODE((tmp_path / "site.key").stat().st_mode) == 0o600
    public = (tmp_path / "site.key.pub").read_text().strip()
    assert public in out
    assert "PRIVATE" not in out


def test_verify_transfer_prove_and_bundle(small_log: World) -> None:
    w = small_log
    pub = w.dir / "gateway.key.pub"
    code, out = _run("ledger", "verify", w.log, "--key", pub)
    assert code == 0, out
    assert "OK" in out
    assert "5 records" in out
    credit = w.ledger().entries[4].id  # bob's
    code, out = _run(
        "ledger",
        "transfer",
        w.log,
        "--credit",
        credit,
        "--to",
        w.dir / "alice.key.pub",
        "--key",
        w.dir / "bob.key",
    )
    assert code == 0, out
    code, out = _console(
        "ledger",
        "transfer",
        w.log,
        "--credit",
        credit,
        "--to",
        w.dir / "bob.key.pub",
        "--key",
        w.dir / "bob.key",
    )
    assert code == 2
    assert "double spend" in out
    assert "Traceback" not in out
    code, out = _run(
        "ledger", "checkpoint", w.log, "--key", w.dir / "gateway.key", "--out", w.dir / "kept.json"
    )
    assert code == 0, out
    code, out = _run("ledger", "prove", w.log, "--credit", credit, "--out", w.dir / "b.json")
    assert code == 0, out
    code, out = _run("ledger", "verify", "--bundle", w.dir / "b.json", "--key", pub, "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["ok"]
    assert doc["owner"] == w.alice_pub
    assert doc["transfers"] == 1
    code, out = _run("ledger", "verify", w.log, "--key", pub, "--checkpoint", w.dir / "kept.json")
    assert code == 0, out
    code, out = _run("ledger", "show", w.log, "--json")
    assert json.loads(out)["transfers"] == 2


def test_verify_fails_with_exit_1_and_names_the_problem(small_log: World) -> None:
    w = small_log
    data = w.log.read_bytes().replace(b'"discharged_wh":1001', b'"discharged_wh":9001')
    w.log.write_bytes(data)
    code, out = _run("ledger", "verify", w.log, "--key", w.dir / "gateway.key.pub")
    assert code == 1
    assert "FAILED" in out
    assert "does not match the log" in out
    assert "Traceback" not in out


def test_a_world_readable_key_is_a_one_line_error(small_log: World) -> None:
    key = small_log.dir / "bob.key"
    key.chmod(0o644)
    code, out = _console("ledger", "checkpoint", small_log.log, "--key", key)
    assert code == 2
    assert "chmod 600" in out
    assert "Traceback" not in out


def test_the_auditor_entry_point_runs_the_same_commands(small_log: World) -> None:
    pub = small_log.dir / "gateway.key.pub"
    done = subprocess.run(
        [sys.executable, "-m", "bessai.ledger", "verify", str(small_log.log), "--key", str(pub),
         "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["records"] == 5
    small_log.log.write_bytes(small_log.log.read_bytes()[:-10] + b"\n")
    done = subprocess.run(
        [sys.executable, "-m", "bessai.ledger", "verify", str(small_log.log), "--key", str(pub)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "FAILED" in done.stdout


def test_a_mistyped_log_is_an_error_not_a_new_log(tmp_path: Path) -> None:
    code, out = _console("ledger", "show", tmp_path / "credts.jsonl")
    assert code == 2
    assert "no credits log at" in out
    assert not (tmp_path / "credts.jsonl").exists()
