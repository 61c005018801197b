"""The layer order of docs/architecture.md is enforced: `lint-imports` (run by `make lint`)
passes on the source as it is and fails when a low layer imports a high one, or when the control
cycle imports a vendor module."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=src.parent, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def src_copy(tmp_path: Path) -> Path:
    target = tmp_path / "src"
    shutil.copytree(ROOT / "src", target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        ("plant/battery.py", "import bessai.api.app", "Layers"),
        ("modbus/codec.py", "import bessai.devices.base", "Layers"),
        ("control/site.py", "import bessai.devices.huawei", "vendor-neutral"),
    ],
)
def test_an_import_against_the_layers_fails_lint(
    src_copy: Path, module: str, bad_import: str, contract: str
) -> None:
    clean = _lint(src_copy)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    path = src_copy / "bessai" / module
    path.write_text(path.read_text() + f"\n{bad_import}  # noqa\n")
    broken = _lint(src_copy)
    assert broken.returncode != 0
    assert "BROKEN" in broken.stdout
    assert contract in broken.stdout
