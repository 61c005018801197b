"""A real Flower deployment on loopback: `bessai fl serve` (SuperLink + ServerApp) and three
`bessai fl join` (SuperNode + ClientApp), one per site, as separate processes; the first test
over TLS (a throw-away CA), the dropout test insecure.

Needs Flower (the `fl` extra). Flower 1.41 pins an older web stack than the rest of the dev
environment may carry; BESSAI_FL_PYTHON names a Python that has `bessai[fl]`'s dependencies
when this one has not (docs/federated.md).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import bessai
from bessai.federated.model import read_coefficients
from bessai.federated.processes import free_port
from bessai.federated.stats import pooled_ridge
from tests.federated.conftest import SITES, SiteSpec, rows_of

FL_PYTHON = (
    sys.executable if importlib.util.find_spec("flwr") else os.environ.get("BESSAI_FL_PYTHON")
)
pytestmark = pytest.mark.skipif(
    not FL_PYTHON,
    reason="Flower is not installed (pip install 'bessai[fl]' or set BESSAI_FL_PYTHON)",
)
SRC = str(Path(bessai.__file__).resolve().parents[1])


def bessai_cmd(*args: str) -> list[str]:
    assert FL_PYTHON is not None
    return [FL_PYTHON, "-m", "bessai.cli", *args]


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = SRC + os.pathsep + out.get("PYTHONPATH", "")
    return out


def make_certs(d: Path) -> dict[str, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (IP SAN), made with openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl not found (Makefile SYSTEM_DEPS installs it)")
    d.mkdir()

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "1", "-subj", "/CN=bessai-fl-test-ca")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "san.ext")  # fmt: skip
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}


class Federation:
    """`bessai fl join` processes on one SuperLink port, over TLS with a throw-away CA or
    insecure; stopped at teardown."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.joins: list[subprocess.Popen[bytes]] = []
        self.certs: dict[str, Path] | None = None

    def use_tls(self) -> None:
        self.certs = make_certs(self.tmp / "pki")

    def client_tls(self) -> list[str]:
        if self.certs is None:
            return ["--insecure"]
        return ["--root-certificates", str(self.certs["ca"])]

    def server_tls(self) -> list[str]:
        if self.certs is None:
            return ["--insecure"]
        return ["--ssl-certfile", str(self.certs["cert"]), "--ssl-keyfile",
                str(self.certs["key"]), "--ssl-ca-certfile", str(self.certs["ca"])]  # fmt: skip

    def join(self, spec: SiteSpec, *extra: str) -> None:
        args = bessai_cmd(
            "fl", "join", "--superlink", f"127.0.0.1:{self.port}", *self.client_tls(),
            "--prices", str(spec.prices), "--site", spec.site,
            "--from", spec.first, "--to", spec.last,
            "--log", str(self.tmp / f"{spec.site}.log"), *extra,
        )  # fmt: skip
        self.joins.append(subprocess.Popen(args, env=env(), stderr=subprocess.DEVNULL))

    def serve(self, *extra: str) -> subprocess.CompletedProcess[str]:
        args = bessai_cmd(
            "fl", "serve", "--out", str(self.tmp / "model"), "--work-dir",
            str(self.tmp / "server"), "--port", str(self.port), *self.server_tls(),
            "--wait-s", "90", "--run-timeout-s", "300", *extra,
        )  # fmt: skip
        return subprocess.run(args, env=env(), capture_output=True, text=True, timeout=420)

    def status(self, *extra: str) -> str:
        args = bessai_cmd("fl", "status", "--work-dir", str(self.tmp / "server"), *extra)
        return subprocess.run(args, env=env(), capture_output=True, text=True, check=True).stdout

    def stop(self) -> None:
        for p in self.joins:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.joins:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[Federation]:
    fed = Federation(tmp_path)
    try:
        yield fed
    finally:
        fed.stop()


def pooled_vector(specs: list[SiteSpec]) -> np.ndarray:
    rows = [rows_of(s) for s in specs]
    x = np.concatenate([r.x for r in rows])
    y = np.concatenate([r.y for r in rows])
    return pooled_ridge(x, y, 1.0).vector()


def test_three_supernodes_train_the_centralised_model(federation: Federation) -> None:
    federation.use_tls()
    for spec in SITES:
        federation.join(spec)
    done = federation.serve("--min-clients", "3", "--expect-clients", "3")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["state"] == "done"
    assert sorted(summary["sites"]) == sorted(s.site for s in SITES)
    fed = read_coefficients(federation.tmp / "model")
    assert np.max(np.abs(fed - pooled_vector(list(SITES)))) < 1e-9
    status = json.loads(federation.status())
    assert [r["stage"] for r in status["rounds"]] == ["moments", "gram", "calibrate"]
    metrics = federation.status("--prometheus")
    assert "fl_rounds_total 3.0" in metrics
    assert "fl_train_loss " in metrics


def test_a_site_dying_mid_round_does_not_stall_or_corrupt_it(federation: Federation) -> None:
    federation.join(SITES[0])
    federation.join(SITES[1], "--drop-at", "gram")
    federation.join(SITES[2])
    done = federation.serve(
        "--min-clients", "2", "--expect-clients", "3", "--round-timeout-s", "45"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    status = json.loads(federation.status())
    gram = [r for r in status["rounds"] if r["stage"] == "gram"]
    assert gram[0]["answered"] == 2
    assert len(gram[0]["dropped"]) == 1
    assert gram[1]["answered"] == 2  # asked again around the two remaining sites' means
    assert sorted(status["sites"]) == ["crucero", "norte-2021"]
    fed = read_coefficients(federation.tmp / "model")
    assert np.max(np.abs(fed - pooled_vector([SITES[0], SITES[2]]))) < 1e-9
