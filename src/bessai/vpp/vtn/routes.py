"""The VTN's HTTP API (OpenADR 3.1.0) as one FastAPI router.

Self-contained: errors are answered inside the routes as problem documents, query parameters
are read by hand (a malformed one is a 400, never FastAPI's 422, which the spec does not
list), so a host app needs no handler of ours: ``app.include_router(vtn_router(vtn),
prefix="/openadr3/3.1.0")``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from bessai.vpp.vtn.auth import Principal, TokenError
from bessai.vpp.vtn.service import KINDS, Kind, Vtn, VtnError

_PLAIN = ("programID", "eventID", "clientName", "venName", "resourceName", "venID")
_MAX_LIMIT = 50
Handler = Callable[[Request], Awaitable[Response]]


def _problem(status: int, detail: str) -> JSONResponse:
    titles = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
              409: "Conflict", 500: "Internal Server Error"}  # fmt: skip
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"type": "about:blank", "title": titles.get(status, "Error"), "status": status,
            "detail": detail}  # fmt: skip
    return JSONResponse(body, status_code=status, headers=headers)


def _principal(vtn: Vtn, request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    who = vtn.tokens.principal(token.strip()) if scheme.lower() == "bearer" else None
    if who is None:
        raise VtnError(401, "a valid bearer token is required (POST auth/token)")
    return who


def _int(request: Request, name: str, default: int, maximum: int | None = None) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise VtnError(400, f"query parameter {name}={text!r} is not an integer") from None
    if value < 0 or (maximum is not None and value > maximum):
        raise VtnError(400, f"query parameter {name}={value} is out of range")
    return value


def _filters(request: Request) -> dict[str, Any]:
    q = request.query_params
    out: dict[str, Any] = {k: q[k] for k in _PLAIN if k in q}
    out["skip"] = _int(request, "skip", 0)
    out["limit"] = _int(request, "limit", _MAX_LIMIT, _MAX_LIMIT)
    if q.getlist("targets"):
        out["targets"] = q.getlist("targets")
    if q.getlist("objects"):
        out["objects"] = q.getlist("objects")
    if "active" in q:
        if q["active"] not in ("true", "false"):
            raise VtnError(400, f"query parameter active={q['active']!r} is not true or false")
        out["active"] = q["active"] == "true"
    return out


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise VtnError(400, "the body is not JSON") from None


def _guard(handler: Callable[[Request], Awaitable[Any]], status: int = 200) -> Handler:
    async def run(request: Request) -> Response:
        try:
            return JSONResponse(await handler(request), status_code=status)
        except VtnError as exc:
            return _problem(exc.status, exc.detail)

    return run


def _collection_routes(router: APIRouter, vtn: Vtn, kind: Kind) -> None:
    base, item = f"/{kind.path}", f"/{kind.path}/{{object_id}}"

    async def search(request: Request) -> Any:
        return vtn.search(_principal(vtn, request), kind, _filters(request))

    async def create(request: Request) -> Any:
        who = _principal(vtn, request)
        return vtn.create(who, kind, await _body(request))

    async def read(request: Request) -> Any:
        return vtn.read(_principal(vtn, request), kind, request.path_params["object_id"])

    async def update(request: Request) -> Any:
        who = _principal(vtn, request)
        return vtn.update(who, kind, request.path_params["object_id"], await _body(request))

    async def delete(request: Request) -> Any:
        return vtn.delete(_principal(vtn, request), kind, request.path_params["object_id"])

    tag: list[str | Enum] = [kind.path]
    router.add_api_route(base, _guard(search), methods=["GET"], tags=tag)
    router.add_api_route(base, _guard(create, 201), methods=["POST"], tags=tag)
    router.add_api_route(item, _guard(read), methods=["GET"], tags=tag)
    router.add_api_route(item, _guard(update), methods=["PUT"], tags=tag)
    router.add_api_route(item, _guard(delete), methods=["DELETE"], tags=tag)


def vtn_router(vtn: Vtn) -> APIRouter:
    """The VTN's routes, to mount under the prefix of the host's choice."""
    router = APIRouter()

    async def token(request: Request) -> Response:
        try:
            answer = vtn.tokens.issue(await request.body(), request.headers.get("authorization"))
        except TokenError as exc:
            headers = {"WWW-Authenticate": 'Basic realm="vtn"'} if exc.status == 401 else None
            body = {"error": exc.error, "error_description": exc.description}
            return JSONResponse(body, status_code=exc.status, headers=headers)
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    async def server(request: Request) -> Response:
        url = str(request.url).split("?", 1)[0].removesuffix("/server") + "/token"
        return JSONResponse({"tokenURL": url})

    async def notifiers(request: Request) -> Any:
        _principal(vtn, request)
        return {"WEBHOOK": True}

    router.add_api_route("/auth/token", token, methods=["POST"], tags=["auth"])
    router.add_api_route("/auth/server", server, methods=["GET"], tags=["auth"])
    router.add_api_route("/notifiers", _guard(notifiers), methods=["GET"], tags=["notifiers"])
    for kind in KINDS.values():
        _collection_routes(router, vtn, kind)
    return router
