"""Property-based API testing: schemathesis generates requests from the published OpenAPI spec
of a running `bessai run` (valid and invalid bodies and parameters) and checks that no answer is
a server error and that every documented answer matches its schema and content type. The number
of examples per operation is bounded so the run stays in the test suite's budget.

Each operation's strategy is driven by hypothesis directly (schemathesis' own pytest plugin
does not load under pytest 9)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from .conftest import RunningGateway

MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture(scope="module")
def operations(running_gateway: RunningGateway) -> list[Any]:
    # The spec itself needs a read key.
    schema = schemathesis.openapi.from_url(
        f"{running_gateway.base_url}/api/v1/openapi.json",
        headers={"X-API-Key": running_gateway.keys["read"]},
    )
    ops = [result.ok() for result in schema.get_all_operations()]
    # An endless stream cannot be checked one response at a time; test_stream covers it.
    return [op for op in ops if op.path != "/api/v1/events"]


@pytest.fixture(scope="module", autouse=True)
def _restore_site(running_gateway: RunningGateway) -> Any:
    yield
    # Generated requests may leave the shared site in safe mode or overridden.
    auth = {"X-API-Key": running_gateway.keys["control"]}
    base = f"{running_gateway.base_url}/api/v1/sites/demo"
    httpx.post(f"{base}/mode", json={"mode": "auto"}, headers=auth).raise_for_status()
    httpx.delete(f"{base}/override", headers=auth).raise_for_status()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_has_no_server_error(
    operations: list[Any], running_gateway: RunningGateway, mode: GenerationMode
) -> None:
    assert len(operations) >= 11
    headers = {"Authorization": f"Bearer {running_gateway.keys['control']}"}
    called: dict[str, int] = {}
    for operation in operations:
        # Valid requests go to the real site so overrides and modes reach the guard; invalid
        # ones also get random site ids.
        real_site = {"site_id": "demo"} if mode is GenerationMode.POSITIVE else None
        on_site = real_site if "{site_id}" in operation.path else None

        @given(case=operation.as_strategy(generation_mode=mode, path_parameters=on_site))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            case.call_and_validate(
                base_url=running_gateway.base_url, headers=headers, checks=CHECKS
            )
            called[case.operation.label] = called.get(case.operation.label, 0) + 1

        check()
    assert len(called) >= len(operations) - 2, called  # some have no invalid inputs to make
