"""The optional gateway-per-pod chart, rendered by Helm's Go engine: every manifest valid for
Kubernetes, the mounted site.toml a valid bessai configuration whose ports and data directory
are the ones the pod exposes and mounts, and a liveness probe that never restarts a site for
being in SAFE."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from bessai.config import load_config
from tests.deploy.conftest import DEPLOY
from tests.deploy.images import dockerfile, final_stage, one, parse_bessai

CHART = DEPLOY / "helm" / "bessai-gateway"
KUBE_VERSIONS = ["1.25.0", kubernetes_validate.latest_version()]
VALUE_SETS = ["default", "production", "secrets"]


def _values(name: str) -> dict[str, Any]:
    if name == "production":
        loaded: dict[str, Any] = yaml.safe_load((CHART / "values-production.yaml").read_text())
        return loaded
    if name == "secrets":
        return {"secretEnv": {"BESSAI_TELEMETRY__SINKS__0__PASSWORD": "pw"}}
    return {}


def render(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{kind: manifest} of everything the chart renders."""
    with helm.Chart.load(str(CHART)) as chart:
        files = chart.render(values, name="site", namespace="bess", is_install=True)
    docs = [
        d
        for path, text in sorted(files.items())
        if path.endswith(".yaml")
        for d in yaml.safe_load_all(text)
        if d
    ]
    by_kind = {d["kind"]: d for d in docs}
    assert len(by_kind) == len(docs)
    return by_kind


@pytest.mark.parametrize("values", VALUE_SETS)
@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_every_manifest_validates(values: str, version: str) -> None:
    for kind, doc in render(_values(values)).items():
        if kind not in {"ServiceMonitor", "PrometheusRule"}:  # Prometheus Operator CRDs
            kubernetes_validate.validate(doc, version, strict=True)


def test_helm_lint_strict_finds_nothing() -> None:
    for name in VALUE_SETS:
        report = helm.lint(str(CHART), _values(name), strict=True)
        assert (report["errors"], report["messages"]) == ([], [])


@pytest.mark.parametrize("values", VALUE_SETS)
def test_the_mounted_site_toml_is_what_the_pod_serves(values: str, tmp_path: Path) -> None:
    manifests = render(_values(values))
    toml = tmp_path / "site.toml"
    toml.write_text(manifests["ConfigMap"]["data"]["site.toml"])
    config, _ = load_config(toml, environ={})
    pod = manifests["StatefulSet"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == one(final_stage(dockerfile()), "CMD").exec_form()
    assert parse_bessai(container["args"]).info_name == "run"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert f"{mounts['config']}/site.toml" == container["args"][2]
    assert str(config.gateway.data_dir) == mounts["data"]  # the persistent volume
    claim = manifests["StatefulSet"]["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    assert claim == "data"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert config.gateway.http_host == "0.0.0.0"
    assert ports["http"] == config.gateway.http_port
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["BESSAI_HEALTH_PORT"] == str(config.gateway.http_port)
    if config.proxy.enabled:
        assert ports["modbus"] == config.proxy.port
    else:
        assert "modbus" not in ports
    service_ports = {p["name"]: p["targetPort"] for p in manifests["Service"]["spec"]["ports"]}
    assert service_ports == {name: name for name in ports}


def test_one_gateway_per_outbox_and_no_restart_for_safe() -> None:
    manifests = render({})
    spec = manifests["StatefulSet"]["spec"]
    assert spec["replicas"] == 1
    (container,) = spec["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert "httpGet" not in container["livenessProbe"]  # /health is 503 in SAFE
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_secret_environment_reaches_the_pod() -> None:
    manifests = render(_values("secrets"))
    (container,) = manifests["StatefulSet"]["spec"]["template"]["spec"]["containers"]
    (source,) = container["envFrom"]
    assert source["secretRef"]["name"] == manifests["Secret"]["metadata"]["name"]
    assert "BESSAI_TELEMETRY__SINKS__0__PASSWORD" in manifests["Secret"]["stringData"]
    production = render(_values("production"))
    assert "Secret" not in production  # the operator's own Secret
    (container,) = production["StatefulSet"]["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"][0]["secretRef"]["name"] == "bessai-gateway-plant-01"


@pytest.mark.parametrize(
    "values",
    [{"siteToml": "[gateway]\n"}, {"secretEnv": {"PASSWORD": "x"}}, {"httpPort": 0}, {"x": 1}],
)
def test_the_values_schema_refuses_bad_values(values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmValuesError):
        render(values)


def test_the_prometheus_rule_is_the_shipped_rules_files() -> None:
    rules = DEPLOY / "prometheus" / "rules"
    groups = []
    for name in ("gateway.rules.yml", "security.rules.yml"):
        assert (CHART / "files" / name).read_text() == (rules / name).read_text()
        groups += yaml.safe_load((rules / name).read_text())["groups"]
    rule = render(_values("production"))["PrometheusRule"]
    assert rule["spec"] == {"groups": groups}


def test_api_keys_from_a_secret_are_the_key_file_the_gateway_reads(tmp_path: Path) -> None:
    manifests = render(_values("production"))
    pod = manifests["StatefulSet"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "api-keys")
    volume = next(v for v in pod["volumes"] if v["name"] == "api-keys")
    assert volume["secret"]["secretName"] == "bessai-gateway-plant-01-keys"
    assert mount["readOnly"] is True
    toml = tmp_path / "site.toml"
    toml.write_text(manifests["ConfigMap"]["data"]["site.toml"])
    config, overridden = load_config(
        toml, environ={"BESSAI_API__KEYS_FILE": env["BESSAI_API__KEYS_FILE"]}
    )
    assert overridden == ["api.keys_file"]
    assert str(config.keys_file) == f"{mount['mountPath']}/api_keys.json"
    default = render({})["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]
    assert "BESSAI_API__KEYS_FILE" not in {e["name"] for e in default["env"]}
