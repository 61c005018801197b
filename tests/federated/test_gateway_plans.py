"""A gateway plans on a federated model directory (`forecaster = "model:DIR"`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bessai.federated.local import LocalTransport
from bessai.federated.mlp import MlpSpec
from bessai.federated.server import Policy, run_mlp, run_ridge
from bessai.federated.site import SiteRows
from tests.conftest import DATA


@pytest.mark.parametrize("kind", ["ridge", "mlp"])
def test_the_planner_plans_on_the_federated_model(
    site_rows: list[SiteRows], tmp_path: Path, kind: str
) -> None:
    pytest.importorskip("onnx")
    from bessai.config import OptimizerConfig, SiteConfig
    from bessai.control.audit import AuditLog
    from bessai.control.planner import SchedulePlanner
    from bessai.control.site import SiteRunner
    from bessai.devices.registry import open_device

    t = LocalTransport(site_rows)
    if kind == "ridge":
        fed = run_ridge(t, t.ids(), Policy(min_clients=3))
    else:
        fed = run_mlp(t, t.ids(), Policy(min_clients=3), MlpSpec(rounds=2))
    fed.write(tmp_path / "model")
    audit = AuditLog(tmp_path / "audit.sqlite")
    site_config = SiteConfig(id="f1")
    site = SiteRunner(site_config, open_device(site_config), audit)
    config = OptimizerConfig(
        prices=str(DATA / "cen_cmg_valdivia220_2023.tsv"),
        forecaster=f"model:{tmp_path / 'model'}",
    )
    plan = SchedulePlanner(site, config).plan(datetime(2023, 6, 20, 12, 30, tzinfo=UTC), 50.0)
    assert plan.bands is not None
    assert len(plan.bands.p50) == len(plan.schedule) == 24
    assert all(
        lo <= mid <= hi
        for lo, mid, hi in zip(plan.bands.p10, plan.bands.p50, plan.bands.p90, strict=True)
    )
    audit.close()
