"""docs/telemetry.md must say what the code does: the schema and the TOML example."""

from __future__ import annotations

import ast
import importlib
import json
import re
import tomllib
from pathlib import Path

from bessai.telemetry import load_telemetry_config
from bessai.telemetry.envelope import Envelope, envelope_json_schema

DOC = Path(__file__).resolve().parents[2] / "docs" / "telemetry.md"


def _block(lang: str, after: str) -> str:
    text = DOC.read_text()
    start = text.index(after)
    match = re.search(rf"```{lang}\n(.*?)```", text[start:], re.S)
    assert match, f"no ```{lang} block after {after!r} in {DOC}"
    return match.group(1)


def test_schema_in_doc_matches_the_model() -> None:
    documented = json.loads(_block("json", "<!-- envelope-schema:begin -->"))
    expected = envelope_json_schema()
    assert documented == expected, (
        "docs/telemetry.md is stale; replace the schema block with:\n"
        + json.dumps(expected, indent=2)
    )


def test_example_envelope_in_doc_is_valid() -> None:
    example = _block("json", "The idempotency key is").strip()
    env = Envelope.from_json(example, where="docs/telemetry.md example")
    assert env.key == "plant-7:1041"


def test_toml_example_in_doc_is_a_valid_config() -> None:
    doc = tomllib.loads(_block("toml", "## Configuration"))
    cfg = load_telemetry_config(doc["telemetry"], source="docs/telemetry.md")
    assert [s.type for s in cfg.sinks] == ["mqtt", "nats", "lake"]


def test_gateway_snippet_in_doc_compiles_and_its_imports_exist() -> None:
    source = _block("python", "## For the gateway cycle")
    code = compile(source, "docs/telemetry.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    assert code is not None
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module}.{alias.name} in the doc"
