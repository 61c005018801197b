"""The error answers each route can give, as published in the OpenAPI spec. Every answer is
`{"detail": ...}` (422 has FastAPI's list of problems). A route lists exactly the codes it can
return: the key checks' codes on every keyed route, 403 only where a read key is not enough,
400 and 413 where a body is read, 404 where a site is named."""

from __future__ import annotations

from typing import Any

from bessai.api.models import Problem

Responses = dict[int | str, dict[str, Any]]


def problem(description: str) -> dict[str, Any]:
    """An OpenAPI response entry whose body is `{"detail": ...}`."""
    return {"model": Problem, "description": description}


#: every route that needs a key (the router's default)
KEYED: Responses = {
    400: problem("an API key in the query string: keys go in a header"),
    401: problem("no or unknown API key"),
    429: problem("too many failed authentications from this client (Retry-After)"),
    503: problem("the API keys file is damaged; the detail names it and the way out"),
}
#: routes that need more than a read key
FORBIDDEN: Responses = {403: problem("the key's role is too low")}
#: routes that read a JSON body
BODY: Responses = {
    400: problem("an API key in the query string, or a body that cannot be decoded (not UTF-8)"),
    413: problem("request body over api.max_body_bytes"),
}
#: routes that name a site
NOT_FOUND: Responses = {404: problem("unknown site")}
