"""How the API answers a request it cannot serve, so every answer is valid JSON.

FastAPI's own 422 handler echoes each problem's `input`, and Python's JSON parser reads `NaN`,
`Infinity` and `1e400` into floats that strict JSON cannot carry: the echo failed to encode and
the caller got a 500 (and the operator a traceback). Here non-finite numbers in an echoed error
become the strings JSON would have needed (`"NaN"`, `"Infinity"`, `"-Infinity"`)."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

#: FastAPI's answer to a body it could not decode (not UTF-8, nested too deep)
UNPARSED_BODY = "There was an error parsing the body"


def finite(value: Any) -> Any:
    """`value` with every non-finite float, however deep, replaced by its JSON-ish name."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with FastAPI's list of problems, encodable whatever the input was."""
    if not isinstance(exc, RequestValidationError):  # registered for it alone
        raise exc
    return JSONResponse({"detail": finite(jsonable_encoder(exc.errors()))}, status_code=422)


async def http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's HTTP error answer; a body it could not decode says why."""
    if not isinstance(exc, HTTPException):  # registered for it alone
        raise exc
    if exc.status_code == 400 and exc.detail == UNPARSED_BODY and exc.__cause__ is not None:
        cause = exc.__cause__
        why = str(cause) or type(cause).__name__
        if isinstance(cause, RecursionError):
            why = "nested too deep"
        exc = HTTPException(400, f"the request body is not valid JSON text: {why}")
    return await http_exception_handler(request, exc)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into the API's JSON error document."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
