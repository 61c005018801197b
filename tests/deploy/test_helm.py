"""The fleet Helm chart, rendered by Helm's own template engine (helm-python-sdk binds Helm's Go
library; no helm binary, no cluster) for the default, production and a full set of values;
every manifest validated against the Kubernetes schemas (kubernetes-validate, strict) of the
oldest supported and the newest bundled Kubernetes."""

from __future__ import annotations

import tomllib
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from bessai.config import GatewayConfig
from tests.deploy.conftest import DEPLOY
from tests.deploy.images import compose, dockerfile, final_stage, has_command, one, parse_bessai

CHART = DEPLOY / "helm" / "bessai-fleet"
KUBE_VERSIONS = ["1.25.0", kubernetes_validate.latest_version()]
FLEET_KEYS = {"http_port", "database_url", "nats_url", "stream", "consumer"}
# A CRD of the Prometheus Operator: not in the Kubernetes schemas; checked field by field here.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}

FULL = {
    "database": {"existingSecret": "", "url": "postgresql://bessai:pw@db:5432/bessai"},
    "extraSecretEnv": {"BESSAI_FLEET_API_KEY": "k"},
    "extraEnv": {"BESSAI_LOG_LEVEL": "debug"},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "prometheusRule": {"enabled": True},
    "networkPolicy": {"egressTo": [{"podSelector": {"matchLabels": {"app": "nats"}}}]},
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
        }
    ],
    "nodeSelector": {"kubernetes.io/arch": "amd64"},
    "imagePullSecrets": [{"name": "ghcr"}],
}


def _values(name: str) -> dict[str, Any]:
    if name == "default":
        return {}
    if name == "production":
        loaded: dict[str, Any] = yaml.safe_load((CHART / "values-production.yaml").read_text())
        return loaded
    return FULL


def render(values: dict[str, Any], namespace: str = "fleet") -> list[dict[str, Any]]:
    """Every manifest the chart renders, as data (NOTES.txt left out)."""
    with helm.Chart.load(str(CHART)) as chart:
        files = chart.render(values, name="bessai-fleet", namespace=namespace, is_install=True)
    docs = []
    for path, text in sorted(files.items()):
        if path.endswith(".yaml"):
            docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def _by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = [d["kind"] for d in docs]
    assert len(kinds) == len(set(kinds)), kinds
    return {d["kind"]: d for d in docs}


VALUE_SETS = ["default", "production", "full"]


@pytest.fixture(scope="module", params=VALUE_SETS)
def manifests(request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    return _by_kind(render(_values(request.param)))


@pytest.mark.parametrize("values", VALUE_SETS)
@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(values: str, version: str) -> None:
    docs = render(_values(values))
    assert {"Deployment", "Service", "ConfigMap"} <= {d["kind"] for d in docs}
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(doc, version, strict=True)


def test_what_each_value_set_renders() -> None:
    kinds = {name: sorted(d["kind"] for d in render(_values(name))) for name in VALUE_SETS}
    base = ["ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget", "Service"]
    assert kinds["default"] == sorted([*base, "ServiceAccount"])
    monitoring = ["PrometheusRule", "ServiceMonitor"]
    assert kinds["production"] == sorted([*base, "ServiceAccount", *monitoring])
    assert kinds["full"] == sorted([*base, "Secret", "ServiceAccount", *monitoring])


def test_helm_lint_strict_finds_nothing() -> None:
    for name in VALUE_SETS:
        report = helm.lint(str(CHART), _values(name), strict=True)
        assert report["errors"] == [], report
        assert report["messages"] == [], report


def _container(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (container,) = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_the_configmap_is_the_agreed_fleet_config(manifests: dict[str, dict[str, Any]]) -> None:
    conf = tomllib.loads(manifests["ConfigMap"]["data"]["fleet.toml"])
    assert set(conf) == {"fleet"}
    assert set(conf["fleet"]) <= FLEET_KEYS
    assert "database_url" not in conf["fleet"]  # a secret: from the environment only
    container = _container(manifests)
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    config_path = container["args"][container["args"].index("--config") + 1]
    assert config_path == f"{mount['mountPath']}/fleet.toml"
    assert mount["readOnly"] is True
    port = next(p for p in container["ports"] if p["name"] == "http")["containerPort"]
    assert port == conf["fleet"]["http_port"]


def test_the_container_runs_the_fleet_command_of_the_image(
    manifests: dict[str, dict[str, Any]],
) -> None:
    container = _container(manifests)
    assert "command" not in container  # the image's ENTRYPOINT, bessai
    assert one(final_stage(dockerfile()), "ENTRYPOINT").exec_form() == ["bessai"]
    fleet_compose = compose(DEPLOY / "compose" / "fleet" / "compose.yaml")["services"]["fleet"]
    assert container["args"] == fleet_compose["command"]
    if has_command("fleet", "serve"):
        assert parse_bessai(container["args"]).info_name == "serve"
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    image_user = one(final_stage(dockerfile()), "USER").text.split(":")[0]
    assert str(pod["securityContext"]["runAsUser"]) == image_user
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # Everything the process writes is a volume: the data dir and /tmp.
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/var/lib/bessai", "/tmp"} <= mounts


def test_probes_ask_health_on_the_service_port(manifests: dict[str, dict[str, Any]]) -> None:
    container = _container(manifests)
    env = {e["name"]: e for e in container["env"]}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    port = next(p for p in container["ports"] if p["name"] == "http")["containerPort"]
    assert env["BESSAI_HEALTH_PORT"]["value"] == str(port)
    assert port != GatewayConfig().http_port  # the fleet's own port, not the gateway's
    service = manifests["Service"]["spec"]
    assert service["ports"][0]["targetPort"] == "http"


def test_selectors_pick_the_pods(manifests: dict[str, dict[str, Any]]) -> None:
    pod_labels = manifests["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selectors = [
        manifests["Deployment"]["spec"]["selector"]["matchLabels"],
        manifests["Service"]["spec"]["selector"],
        manifests["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        manifests["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= pod_labels.items()
    monitor = manifests.get("ServiceMonitor")
    if monitor is not None:
        spec = monitor["spec"]
        service_labels = manifests["Service"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= service_labels.items()
        assert spec["endpoints"][0]["port"] == manifests["Service"]["spec"]["ports"][0]["name"]
        assert spec["endpoints"][0]["path"] == "/metrics"
        # The job label the shipped rules and dashboards select on (job="bessai-fleet").
        assert service_labels[spec["jobLabel"]] == "bessai-fleet"


def test_secret_references_resolve(manifests: dict[str, dict[str, Any]]) -> None:
    secret = manifests.get("Secret")
    rendered = {secret["metadata"]["name"]: set(secret["stringData"])} if secret else {}
    for var in _container(manifests)["env"]:
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            continue
        if ref["name"] in rendered:
            assert ref["key"] in rendered[ref["name"]], var
        else:  # a Secret the operator manages (database.existingSecret)
            assert ref["name"] in {"bessai-fleet-database", "bessai-fleet-db"}, var
    env_names = {v["name"] for v in _container(manifests)["env"]}
    assert "BESSAI_FLEET_DATABASE_URL" in env_names


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCount": 0}, "replicaCount"),
        ({"fleet": {"natsUrl": "http://nats:4222"}}, "natsUrl"),
        ({"fleet": {"stream": "a b"}}, "stream"),
        ({"database": {"url": "mysql://x"}}, "url"),
        ({"extraSecretEnv": {"lower": "x"}}, "'lower' does not match"),
        ({"replicas": 3}, "replicas"),
    ],
)
def test_the_values_schema_refuses_bad_values(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=message):
        render(values)


def test_a_chart_without_a_database_secret_refuses_to_render() -> None:
    with pytest.raises(helm.HelmRenderError, match=r"database\.url or database\.existingSecret"):
        render({"database": {"existingSecret": "", "url": ""}})


def test_the_prometheus_rule_is_the_shipped_rules_file() -> None:
    shipped = DEPLOY / "prometheus" / "rules" / "fleet.rules.yml"
    assert (CHART / "files" / "fleet.rules.yml").read_text() == shipped.read_text()
    rule = _by_kind(render(FULL))["PrometheusRule"]
    assert rule["spec"] == yaml.safe_load(shipped.read_text())
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
