"""The GCP Terraform, checked offline: it parses as HCL (python-hcl2), `terraform fmt` accepts it
when the binary is installed, every reference resolves, IAM is least privilege, dead lettering
is wired with the permissions Pub/Sub needs, and the BigQuery table has the envelope's fields.

Not checked here (needs the google provider from the Terraform registry, which is not
reachable offline): `terraform validate` against the provider's schema and `terraform plan`."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from typing import Any

import hcl2
import pytest

from bessai.telemetry.envelope import EnvelopeModel
from tests.deploy.conftest import DEPLOY

TF = DEPLOY / "terraform" / "gcp"
FILES = sorted(TF.glob("*.tf"))
PROJECT_ROLES = {"roles/bigquery.jobUser"}  # cannot be granted on a dataset


def _clean(node: Any) -> Any:
    """python-hcl2's tree without its quoting of names and strings and its metadata keys."""
    if isinstance(node, dict):
        return {
            _unquote(k): _clean(v)
            for k, v in node.items()
            if k not in {"__is_block__", "__comments__"}
        }
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return _unquote(node) if isinstance(node, str) else node


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


@functools.cache
def _parsed() -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for path in FILES:
        with path.open() as f:
            for key, blocks in _clean(hcl2.load(f)).items():
                merged.setdefault(key, []).extend(blocks)
    return merged


def _declared(kind: str) -> dict[tuple[str, str], dict[str, Any]]:
    """{(type, name): body} of every resource (or data source)."""
    return {
        (rtype, name): body
        for block in _parsed().get(kind, [])
        for rtype, named in block.items()
        for name, body in named.items()
    }


def _text() -> str:
    return "\n".join(p.read_text() for p in FILES)


def test_every_file_parses_as_hcl() -> None:
    assert {p.name for p in FILES} == {
        "versions.tf",
        "variables.tf",
        "pubsub.tf",
        "bigquery.tf",
        "iam.tf",
        "outputs.tf",
    }
    assert _declared("resource")


def test_terraform_fmt_accepts_it() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("the terraform binary is not installed (checked by python-hcl2 only)")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-diff", "-recursive", str(TF)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_every_reference_resolves_and_every_variable_is_used() -> None:
    text = re.sub(r"#.*", "", _text())
    resources = set(_declared("resource"))
    data = set(_declared("data"))
    variables = {name for block in _parsed()["variable"] for name in block}
    locals_ = {name for block in _parsed()["locals"] for name in block}
    for rtype, name in re.findall(r"(?<![.\w])(google_\w+)\.(\w+)", text):
        assert (rtype, name) in resources, f"{rtype}.{name}"
    for rtype, name in re.findall(r"\bdata\.(google_\w+)\.(\w+)", text):
        assert (rtype, name) in data, f"data.{rtype}.{name}"
    used_vars = set(re.findall(r"\bvar\.(\w+)", text))
    assert used_vars <= variables, used_vars - variables
    assert variables <= used_vars, f"unused variables: {variables - used_vars}"
    assert set(re.findall(r"\blocal\.(\w+)", text)) <= locals_


def test_the_example_tfvars_sets_every_required_variable() -> None:
    with (TF / "terraform.tfvars.example").open() as f:
        example = _clean(hcl2.load(f))
    variables = {name: body for block in _parsed()["variable"] for name, body in block.items()}
    required = {name for name, body in variables.items() if "default" not in body}
    assert required <= set(example)
    assert set(example) <= set(variables)


def _iam_members() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (rtype, name, body)
        for (rtype, name), body in _declared("resource").items()
        if re.search(r"_iam_(member|binding|policy)$", rtype)
    ]


def test_iam_is_least_privilege() -> None:
    members = _iam_members()
    assert members
    for rtype, name, body in members:
        assert rtype.endswith("_iam_member"), f"{rtype}.{name}: additive members only"
        role = body["role"]
        assert role not in {"roles/owner", "roles/editor", "roles/viewer"}, name
        assert "admin" not in role.lower(), f"{name}: {role}"
        if rtype == "google_project_iam_member":
            assert role in PROJECT_ROLES, f"{name}: {role} at project level"
    resources = _declared("resource")
    assert not [r for r in resources if r[0] == "google_service_account_key"], "no keys in state"
    gateway = "serviceAccount:${google_service_account.gateway.email}"
    gateway_roles = [(t, b) for t, _, b in members if b["member"] == gateway]
    assert gateway_roles == [
        (
            "google_pubsub_topic_iam_member",
            {
                "topic": "${google_pubsub_topic.telemetry.id}",
                "role": "roles/pubsub.publisher",
                "member": gateway,
            },
        )
    ]


def test_dead_lettering_is_wired_with_the_agent_permissions() -> None:
    resources = _declared("resource")
    fleet = resources[("google_pubsub_subscription", "fleet")]
    (policy,) = fleet["dead_letter_policy"]
    assert policy["dead_letter_topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert fleet["topic"] == "${google_pubsub_topic.telemetry.id}"
    assert fleet["enable_message_ordering"] is True  # the sink's ordering key is the site
    dead = resources[("google_pubsub_subscription", "dead_letter")]
    assert dead["topic"] == "${google_pubsub_topic.dead_letter.id}"
    agent = "${local.pubsub_agent}"
    grants = {
        (t, b["role"], b.get("topic") or b.get("subscription"))
        for t, _, b in _iam_members()
        if b["member"] == agent
    }
    assert grants == {
        (
            "google_pubsub_topic_iam_member",
            "roles/pubsub.publisher",
            "${google_pubsub_topic.dead_letter.id}",
        ),
        (
            "google_pubsub_subscription_iam_member",
            "roles/pubsub.subscriber",
            "${google_pubsub_subscription.fleet.id}",
        ),
    }
    locals_ = {k: v for block in _parsed()["locals"] for k, v in block.items()}
    assert "@gcp-sa-pubsub.iam.gserviceaccount.com" in locals_["pubsub_agent"]


def test_bigquery_table_has_the_envelope_fields() -> None:
    table = _declared("resource")[("google_bigquery_table", "envelopes")]
    fields = re.findall(r'name\s*=\s*\\?"(\w+)\\?"', table["schema"])
    assert fields == list(EnvelopeModel.model_fields)
    (partitioning,) = table["time_partitioning"]
    assert partitioning["field"] == "ts"
    assert table["clustering"][0] == "site_id"
    assert table["deletion_protection"] is True


def test_variable_limits_match_pub_sub_limits() -> None:
    variables = {name: body for block in _parsed()["variable"] for name, body in block.items()}
    attempts = variables["max_delivery_attempts"]["validation"][0]["condition"]
    assert ">= 5" in attempts
    assert "<= 100" in attempts
    assert 5 <= variables["max_delivery_attempts"]["default"] <= 100
