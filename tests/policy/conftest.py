"""Policy fixtures: the committed trained policy, and hand-built ONNX graphs that misbehave."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from bessai.policy.card import CARD_FILE, MODEL_FILE, PolicyCard, load_card, sha256_of

#: the policy trained here (models/README.md): small enough to commit, used by every ONNX test
POLICY = Path(__file__).resolve().parents[2] / "models" / "ppo-crucero"


def write_graph_policy(directory: Path, card: PolicyCard, value: float) -> Path:
    """A policy directory whose graph answers `value` for every observation (NaN included)."""
    directory.mkdir(parents=True, exist_ok=True)
    obs = helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", card.n_obs])
    action = helper.make_tensor_value_info("action", TensorProto.FLOAT, ["batch", 1])
    const = helper.make_tensor("value", TensorProto.FLOAT, [1, 1], [value])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("ReduceSum", ["obs", "axes"], ["s"], keepdims=1),
        helper.make_node("Mul", ["s", "zero"], ["z"]),
        helper.make_node("Add", ["z", "value"], ["action"]),
    ]
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [1, 1], [0.0])
    graph = helper.make_graph(nodes, "constant", [obs], [action], [const, axes, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, directory / MODEL_FILE)
    written = replace(card, model_sha256=sha256_of(directory / MODEL_FILE))
    (directory / CARD_FILE).write_text(written.to_json(), encoding="utf-8")
    return directory


@pytest.fixture
def trained_card() -> PolicyCard:
    """The committed policy's card."""
    return load_card(POLICY)


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    """A copy of the committed policy a test may damage."""
    out = tmp_path / "policy"
    shutil.copytree(POLICY, out)
    return out
