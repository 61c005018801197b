"""docs/deployment.md against what ships: every alert is in its table, and the documented online
backup of the outbox gives a consistent copy while the gateway holds the outbox open."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

from bessai.telemetry.envelope import Record
from bessai.telemetry.outbox import Outbox
from tests.deploy.conftest import DEPLOY, ROOT

DOC = ROOT / "docs" / "deployment.md"


def test_every_alert_is_documented() -> None:
    text = DOC.read_text()
    for path in (DEPLOY / "prometheus" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    assert re.search(rf"\b{rule['alert']}\b", text), rule["alert"]


def test_every_deploy_directory_is_documented() -> None:
    text = DOC.read_text()
    for path in DEPLOY.rglob("*"):
        if path.is_dir() and path.parent in {DEPLOY, DEPLOY / "helm", DEPLOY / "compose"}:
            assert f"deploy/{path.relative_to(DEPLOY)}" in text, path


def test_the_documented_outbox_backup_is_consistent_while_the_outbox_is_open(
    tmp_path: Path,
) -> None:
    (line,) = [row for row in DOC.read_text().splitlines() if row.startswith("| outbox |")]
    snippet = re.search(r'python3 -c "([^"]+)"', line)
    assert snippet is not None
    source, backup = tmp_path / "var" / "outbox.sqlite", tmp_path / "backup" / "outbox.sqlite"
    source.parent.mkdir()
    backup.parent.mkdir()
    code = (
        snippet.group(1)
        .replace("/var/lib/bessai/outbox.sqlite", str(source))
        .replace("/backup/outbox.sqlite", str(backup))
    )
    outbox = Outbox(source)
    try:
        for i in range(50):
            outbox.append([Record(site_id="home", values={"soc_pct": float(i)})])
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
        outbox.append([Record(site_id="home", values={"soc_pct": 99.0})])  # still writable
    finally:
        outbox.close()
    with sqlite3.connect(backup) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    copy = Outbox(backup)
    try:
        assert len(copy.read_after(0, 1000)) == 50
    finally:
        copy.close()
