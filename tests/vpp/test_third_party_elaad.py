"""ElaadNL's openadr3-client (strict, typed, Apache-2.0; Python >= 3.12) completes its BL and
VEN flows against our VTN (tests/vpp/elaad_flow.py, run by that client's own interpreter).

The interpreter: $BESSAI_OA3_PYTHON, else the repository's .venv-oa3-py312 (`make oa3-venv`
makes it when a python3.12 is available); without either the test skips, saying so."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from bessai.vpp.spec import problems
from tests.vpp.conftest import RunningVtn

ROOT = Path(__file__).resolve().parents[2]


def interpreter() -> Path | None:
    named = os.environ.get("BESSAI_OA3_PYTHON")
    candidates = [Path(named)] if named else []
    candidates.append(ROOT / ".venv-oa3-py312" / "bin" / "python")
    return next((c for c in candidates if c.exists()), None)


def test_elaad_openadr3_client_flows(vtn_server: RunningVtn) -> None:
    python = interpreter()
    if python is None:
        pytest.skip(
            "no Python 3.12 with openadr3-client: run `make oa3-venv` or set BESSAI_OA3_PYTHON"
        )
    # oauthlib refuses plain-HTTP token endpoints unless told: the VTN listens on loopback.
    env = {**os.environ, "OAUTHLIB_INSECURE_TRANSPORT": "1"}
    env.pop("PYTHONPATH", None)
    script = Path(__file__).with_name("elaad_flow.py")
    done = subprocess.run(
        [str(python), str(script), vtn_server.url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["seen"] == [seen["event"]]
    assert seen["interval_ids"] == [11]
    assert seen["ven_client"] == "ven-3p"
    assert seen["report_client"] == "ven-3p"
    assert seen["reports"] == [seen["report"]]
    report = vtn_server.vtn.store.get("reports", seen["report"])
    assert report is not None
    assert problems("report", report) == []
