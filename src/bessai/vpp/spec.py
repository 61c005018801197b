"""The OpenADR 3.1.0 OpenAPI document (shipped as `openadr3-3.1.0.yaml`, from the `openadr3`
package's source distribution, Apache-2.0, unchanged) as JSON Schema validators: the VTN checks
request bodies with it and the tests check every object either side sends.

OpenAPI 3.0 is not quite JSON Schema: `nullable` becomes a union with null, a boolean
`exclusiveMaximum` its number form, and `discriminator` and `example` are dropped.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft202012Validator, FormatChecker

SPEC_FILE = "openadr3-3.1.0.yaml"
_DROPPED = frozenset({"discriminator", "example", "examples", "xml", "externalDocs"})


@functools.cache
def openapi() -> dict[str, Any]:
    """The OpenAPI document as shipped."""
    text = resources.files("bessai.vpp").joinpath(SPEC_FILE).read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    document: dict[str, Any] = yaml.load(text, Loader=loader)  # a safe loader
    return document


def _to_json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_to_json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_json_schema(v) for k, v in node.items() if k not in _DROPPED}
    if out.get("exclusiveMaximum") is True and "maximum" in out:
        out["exclusiveMaximum"] = out.pop("maximum")
    if out.pop("nullable", False):
        default = out.pop("default", None)
        out = {"anyOf": [out, {"type": "null"}], "default": default}
    return out


@functools.cache
def _components() -> dict[str, Any]:
    schemas = openapi()["components"]["schemas"]
    return {"components": {"schemas": _to_json_schema(schemas)}}


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_FORMATS = FormatChecker()


@_FORMATS.checks("uri", raises=ValueError)
def _is_uri(value: object) -> bool:
    """An absolute URI (RFC 3986: a scheme, then something, no spaces or controls). jsonschema
    checks "uri" only with an optional package; a webhook URL must be checked here."""
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    rest = value[len(parts.scheme) + 1 :]
    bad = any(c.isspace() or ord(c) < 32 or c in '<>"{}|\\^`' for c in value)
    return bool(_SCHEME.match(parts.scheme)) and bool(rest) and not bad


@functools.cache
def validator(schema: str) -> Draft202012Validator:
    """A validator for one schema of the document by name (``eventRequest``, ``report``...)."""
    root = dict(_components())
    root["$ref"] = f"#/components/schemas/{schema}"
    return Draft202012Validator(root, format_checker=_FORMATS)


def problems(schema: str, value: Any) -> list[str]:
    """What in `value` breaks `schema`, one line each (empty: valid)."""
    errors = sorted(validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors]
