"""The API's answers at its edges, over a real socket (uvicorn as `bessai run` serves it):
non-finite numbers, keys checked before the body, forwarded-for headers and trusted proxies,
a damaged keys file. Every status code seen here must be in the published spec."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bessai.logging import configure_logging
from bessai.runtime.http import serve_http

from .conftest import ApiHarness, RunningGateway

OVERRIDE = "/api/v1/sites/t1/override"


@contextlib.asynccontextmanager
async def served(api: ApiHarness) -> AsyncIterator[str]:
    http, port = await serve_http(api.monitor, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        http.should_exit = True
        await http.shutdown()


def client_from(address: str, base_url: str) -> httpx.AsyncClient:
    """A client whose TCP peer address is `address` (any 127.x address is loopback)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(transport=transport, base_url=base_url, timeout=10)


def documented(spec: dict[str, Any], method: str, path: str) -> set[int]:
    return {int(code) for code in spec["paths"][path][method.lower()]["responses"]}


# -- NaN, Infinity, 1e400 ------------------------------------------------------------------------


NON_FINITE = {
    '{"setpoint_w": NaN}': ("setpoint_w", "NaN"),
    '{"setpoint_w": Infinity}': ("setpoint_w", "Infinity"),
    '{"setpoint_w": -Infinity}': ("setpoint_w", "-Infinity"),
    '{"setpoint_w": 1e400}': ("setpoint_w", "Infinity"),
    '{"setpoint_w": 100, "duration_s": NaN}': ("duration_s", "NaN"),
    '{"setpoint_w": 100, "duration_s": 1e400}': ("duration_s", "Infinity"),
}


def test_non_finite_numbers_are_a_422_without_a_traceback(
    running_gateway: RunningGateway,
) -> None:
    url = f"{running_gateway.base_url}/api/v1/sites/demo/override"
    headers = {
        "X-API-Key": running_gateway.keys["control"],
        "Content-Type": "application/json",
    }
    log_before = running_gateway.log_path.stat().st_size
    for body, (field, echoed) in NON_FINITE.items():
        r = httpx.post(url, content=body, headers=headers, timeout=10)
        assert r.status_code == 422, (body, r.text)
        (problem,) = r.json()["detail"]
        assert problem["loc"] == ["body", field], body
        assert problem["msg"] == "Input should be a finite number", body
        assert problem["input"] == echoed, body
    # Non-finite values anywhere an error echoes them: an unknown field, a wrong mode.
    r = httpx.post(url, content='{"setpoint_w": 1, "x": [NaN, -Infinity]}', headers=headers)
    assert r.status_code == 422
    assert r.json()["detail"][0]["input"] == ["NaN", "-Infinity"]
    mode = url.replace("/override", "/mode")
    r = httpx.post(mode, content='{"mode": NaN}', headers=headers)
    assert r.status_code == 422
    assert r.json()["detail"][0]["input"] == "NaN"
    status = httpx.get(
        f"{running_gateway.base_url}/api/v1/sites/demo/status", headers=headers
    ).json()
    assert status["override"] is None  # nothing was installed
    with running_gateway.log_path.open("rb") as log:
        log.seek(log_before)
        logged = log.read().decode()
    assert "Traceback" not in logged
    assert "Exception in ASGI application" not in logged


# -- keys before bodies --------------------------------------------------------------------------


BAD_BODIES: dict[str, tuple[bytes, dict[str, str]]] = {
    "malformed JSON": (b'{"setpoint_w": ', {"Content-Type": "application/json"}),
    "not UTF-8": (b'{"setpoint_w": 1, "reason": "\xff"}', {"Content-Type": "application/json"}),
    "NaN": (b'{"setpoint_w": NaN}', {"Content-Type": "application/json"}),
    "oversized": (b'{"reason": "' + b"x" * 20_000 + b'"}', {"Content-Type": "application/json"}),
}


async def test_the_key_is_checked_before_the_body(make_api: Callable[..., Any]) -> None:
    api = await make_api()
    site = api.gateway.sites["t1"]
    async with served(api) as base, client_from("127.0.0.1", base) as client:
        spec = (await client.get("/api/v1/openapi.json", headers=api.auth("read"))).json()
        seen: set[int] = set()
        for name, (body, headers) in BAD_BODIES.items():
            for path in (OVERRIDE, "/api/v1/sites/t1/mode"):
                anonymous = await client.post(path, content=body, headers=headers)
                assert anonymous.status_code == 401, (name, path, anonymous.text)
                assert "no API key" in anonymous.json()["detail"]
                reader = await client.post(
                    path, content=body, headers={**headers, **api.auth("read")}
                )
                assert reader.status_code == 403, (name, path, reader.text)
                assert "has the read role; this needs control" in reader.json()["detail"]
                seen |= {anonymous.status_code, reader.status_code}
        wrong = {"X-API-Key": "bess_wrong", "Content-Type": "application/json"}
        r = await client.post(OVERRIDE, content=b"{", headers=wrong)
        assert r.status_code == 401
        assert r.json()["detail"] == "API key not recognized"
        # With the right key the body is read, and each problem has its own answer.
        control = api.auth("control")
        answers = {}
        for name, (body, headers) in BAD_BODIES.items():
            r = await client.post(OVERRIDE, content=body, headers={**headers, **control})
            answers[name] = (r.status_code, r.json()["detail"])
            seen.add(r.status_code)
        assert answers["malformed JSON"][0] == 422
        assert answers["malformed JSON"][1][0]["type"] == "json_invalid"
        assert answers["not UTF-8"] == (
            400,
            "the request body is not valid JSON text: 'utf-8' codec can't decode byte 0xff "
            "in position 29: invalid start byte",
        )
        assert answers["NaN"][0] == 422
        assert answers["oversized"] == (413, "request body over the 16384 byte limit")
        assert seen <= documented(spec, "POST", "/api/v1/sites/{site_id}/override")
        assert seen == {400, 401, 403, 413, 422}
    assert site.override.setpoint_w is None
    assert site.mode.value == "auto"


async def test_every_code_a_route_answers_is_in_the_spec(make_api: Callable[..., Any]) -> None:
    api = await make_api(api={"auth_failures_max": 2, "max_streams": 1})
    async with served(api) as base, client_from("127.0.0.1", base) as client:
        spec = (await client.get("/api/v1/openapi.json", headers=api.auth("read"))).json()
        status_route = documented(spec, "GET", "/api/v1/sites/{site_id}/status")
        mode_route = documented(spec, "POST", "/api/v1/sites/{site_id}/mode")
        assert {400, 401, 404, 422, 429, 503} <= status_route
        assert 403 not in status_route  # every key may read
        assert {400, 401, 403, 404, 413, 422, 429, 503} <= mode_route
        assert 409 in documented(spec, "POST", "/api/v1/sites/{site_id}/override")
        assert 409 not in mode_route
        limit = next(
            p for p in spec["paths"]["/api/v1/audit"]["get"]["parameters"] if p["name"] == "limit"
        )
        assert limit["schema"]["maximum"] == 200  # api.max_page_size, not the ceiling
        r = await client.get("/api/v1/sites/nope/status", headers=api.auth("read"))
        assert r.status_code == 404
        r = await client.get("/api/v1/sites/t1/status", params={"token": "x"})
        assert r.status_code == 400
        r = await client.post(
            "/api/v1/sites/t1/mode", json={"mode": "turbo"}, headers=api.auth("control")
        )
        assert r.status_code == 422
    async with served(api) as base, client_from("127.0.0.7", base) as client:
        for _ in range(2):
            await client.get("/api/v1/status", headers={"X-API-Key": "bess_wrong"})
        r = await client.get("/api/v1/sites/t1/status", headers=api.auth("read"))
        assert r.status_code == 429


# -- X-Forwarded-For -----------------------------------------------------------------------------


async def test_forwarded_for_is_ignored_without_trusted_proxies(
    make_api: Callable[..., Any],
) -> None:
    api = await make_api()  # the default: 10 wrong keys per client in 60 s
    wrong = {"X-API-Key": "bess_wrong"}
    async with served(api) as base:
        async with client_from("127.0.0.1", base) as attacker:
            # Ten wrong keys claiming to come from the victim's address ...
            for _ in range(10):
                r = await attacker.get(
                    "/api/v1/status", headers={**wrong, "X-Forwarded-For": "127.0.0.3"}
                )
                assert r.status_code == 401
            # ... count against the attacker's own address, whatever the header says next.
            for i in range(5):
                r = await attacker.get(
                    "/api/v1/status", headers={**wrong, "X-Forwarded-For": f"127.0.0.{50 + i}"}
                )
                assert r.status_code == 429, i
            r = await attacker.get(
                "/api/v1/status", headers={**api.auth("read"), "X-Forwarded-For": "127.0.0.99"}
            )
            assert r.status_code == 429
        async with client_from("127.0.0.3", base) as victim:
            r = await victim.get("/api/v1/status", headers=api.auth("read"))
            assert r.status_code == 200  # not locked out by someone else's header


async def test_trusted_proxies_name_the_client(make_api: Callable[..., Any]) -> None:
    api = await make_api(api={"trusted_proxies": ["127.0.0.1"]})
    wrong = {"X-API-Key": "bess_wrong"}
    async with served(api) as base:
        async with client_from("127.0.0.1", base) as proxy:
            for _ in range(10):
                r = await proxy.get(
                    "/api/v1/status", headers={**wrong, "X-Forwarded-For": "127.0.0.50"}
                )
                assert r.status_code == 401
            # The forwarded client is locked out; the proxy's other clients are not.
            r = await proxy.get(
                "/api/v1/status", headers={**api.auth("read"), "X-Forwarded-For": "127.0.0.50"}
            )
            assert r.status_code == 429
            r = await proxy.get(
                "/api/v1/status", headers={**api.auth("read"), "X-Forwarded-For": "127.0.0.51"}
            )
            assert r.status_code == 200
            r = await proxy.get("/api/v1/status", headers=api.auth("read"))
            assert r.status_code == 200
        # A peer that is not a trusted proxy is counted by its own address, header or not.
        async with client_from("127.0.0.4", base) as direct:
            for i in range(10):
                r = await direct.get(
                    "/api/v1/status", headers={**wrong, "X-Forwarded-For": f"127.0.0.{60 + i}"}
                )
                assert r.status_code == 401
            r = await direct.get(
                "/api/v1/status", headers={**api.auth("read"), "X-Forwarded-For": "127.0.0.70"}
            )
            assert r.status_code == 429


def test_trusted_proxies_must_be_addresses() -> None:
    from bessai.config import ApiConfig

    assert ApiConfig(trusted_proxies=["10.1.2.3/8", "::1"]).trusted_proxies == [
        "10.0.0.0/8",
        "::1",
    ]
    for bad in ("*", "proxy.example", "10.0.0.0/33"):
        with pytest.raises(ValueError, match="is not an IP address or CIDR network"):
            ApiConfig(trusted_proxies=[bad])


# -- a damaged keys file -------------------------------------------------------------------------


async def test_a_damaged_keys_file_is_a_503_logged_once_per_damage(
    make_api: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # Two wrong keys lock a client out: the 503s below must not count as wrong keys.
    api = await make_api(api={"auth_failures_max": 2})
    keys_file: Path = api.gateway.config.keys_file
    good = await asyncio.to_thread(keys_file.read_bytes)
    configure_logging("info", json_output=True)
    async with served(api) as base, client_from("127.0.0.1", base) as client:
        assert (await client.get("/api/v1/status", headers=api.auth("read"))).status_code == 200
        capsys.readouterr()
        await asyncio.to_thread(keys_file.write_text, '{"keys": [')
        for _ in range(3):
            r = await client.get("/api/v1/status", headers=api.auth("read"))
            assert r.status_code == 503
            detail = r.json()["detail"]
            assert detail.startswith(f"API keys file {keys_file} is damaged: not valid JSON")
            assert "re-create the keys with `bessai keys add`" in detail
        # No key at all is still a 401: the file is not needed to say so.
        assert (await client.get("/api/v1/status")).status_code == 401
        # A second, different damage.
        await asyncio.to_thread(keys_file.write_text, '{"keys": [{"name": "x"}]}')
        r = await client.post(OVERRIDE, json={"setpoint_w": 1}, headers=api.auth("control"))
        assert r.status_code == 503
        assert "missing field 'role'" in r.json()["detail"]
        for _ in range(2):
            await client.get("/api/v1/fleet", headers=api.auth("read"))
        await asyncio.to_thread(keys_file.write_bytes, good)
        assert (await client.get("/api/v1/status", headers=api.auth("read"))).status_code == 200
        wrong = await client.get("/api/v1/status", headers={"X-API-Key": "bess_wrong"})
        assert wrong.status_code == 401
        assert (await client.get("/api/v1/status", headers=api.auth("read"))).status_code == 200
    err = capsys.readouterr().err
    damaged = [
        json.loads(line)
        for line in err.splitlines()
        if line.startswith("{") and "API keys file damaged" in line
    ]
    assert [d["file"] for d in damaged] == [str(keys_file)] * 2  # one line per damage
    assert "Traceback" not in err
    assert api.gateway.sites["t1"].override.setpoint_w is None
