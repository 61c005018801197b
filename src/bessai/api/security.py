"""Who may call the API, and the limits every request meets before a route sees it.

- Keys only in a header (`Authorization: Bearer <key>` or `X-API-Key: <key>`): a query string
  ends up in proxy logs, browser history and Referer headers.
- 401 for no or a wrong key, 403 for a key whose role is too low, 429 for a client with too many
  wrong keys in the window (memory bounded: the oldest clients are forgotten first), 503 while
  the keys file is damaged. All of them before the request body is read.
- 413 for a body over the cap, whether it announces its length or streams it.
- The client is the TCP peer; `api.trusted_proxies` lets uvicorn take it from X-Forwarded-For
  for exactly those proxies (runtime/http.py).
- Security headers on every response; the dashboard's page may load only its own files.
- A key never reaches a log line: only the key's name is logged or audited.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog
from fastapi import HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPBearer

from bessai.api.keys import KeysFileError, KeyStore, Principal, Role
from bessai.config import ApiConfig

log = structlog.get_logger("bessai.api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Query parameters people put keys in; refused loudly so the key is not silently ignored.
KEY_QUERY_NAMES = frozenset({"api_key", "apikey", "key", "token", "access_token"})
DEV_PRINCIPAL = Principal("dev-mode", Role.ADMIN)

bearer_scheme = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>")
header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <key>")


class FailureLimiter:
    """Wrong keys per client in a sliding window. At most `max_clients` clients are tracked;
    a flood of new addresses pushes out the oldest, so memory stays bounded."""

    def __init__(self, max_failures: int, window_s: float, max_clients: int = 4_096) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_clients = max_clients
        self._clients: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, client: str, now: float) -> deque[float] | None:
        times = self._clients.get(client)
        if times is None:
            return None
        while times and now - times[0] > self.window_s:
            times.popleft()
        if not times:
            del self._clients[client]
            return None
        return times

    def retry_after_s(self, client: str, now: float | None = None) -> float | None:
        """Seconds until this client may try again, or None when it is not locked out."""
        now = time.monotonic() if now is None else now
        times = self._recent(client, now)
        if times is None or len(times) < self.max_failures:
            return None
        return max(0.0, self.window_s - (now - times[0]))

    def fail(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        times = self._recent(client, now)
        if times is None:
            times = deque(maxlen=self.max_failures)
            self._clients[client] = times
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(client)
        times.append(now)

    def __len__(self) -> int:
        return len(self._clients)


def client_of(request: Request) -> str:
    # The peer address only: X-Forwarded-For is whatever the caller wants it to be.
    """The address of the connection's peer, as logged ("unknown" without one)."""
    return request.client.host if request.client is not None else "unknown"


class Authorizer:
    """Checks keys and roles. Routes reach it through `bessai.api.deps`, which runs it before
    the request body is read, so an unauthenticated caller learns nothing from its body."""

    def __init__(self, config: ApiConfig, store: KeyStore) -> None:
        self.config = config
        self.store = store
        self.limiter = FailureLimiter(config.auth_failures_max, config.auth_failure_window_s)
        #: the damaged version of the keys file last logged (one line per damage, not per call)
        self._damage_logged: tuple[int, int] | bool | None = False

    def authenticate(self, request: Request, token: str | None) -> Principal:
        """The caller's principal, or 400 (key in the URL), 429, 401, or 503 (damaged keys)."""
        if KEY_QUERY_NAMES & set(request.query_params):
            raise HTTPException(
                400,
                "API keys are accepted only in a header (Authorization: Bearer or X-API-Key), "
                "never in the query string",
            )
        if self.config.dev_mode:
            return DEV_PRINCIPAL
        client = client_of(request)
        wait_s = self.limiter.retry_after_s(client)
        if wait_s is not None:
            raise HTTPException(
                429,
                f"too many failed authentications from this client; retry in {wait_s:.0f} s",
                headers={"Retry-After": str(max(1, round(wait_s)))},
            )
        if not token:
            raise HTTPException(
                401,
                "no API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        principal = self._lookup(token) if len(token) <= 256 else None
        if principal is None:
            self.limiter.fail(client)
            log.warning("authentication failed", client=client, path=request.url.path)
            raise HTTPException(
                401, "API key not recognized", headers={"WWW-Authenticate": "Bearer"}
            )
        return principal

    def _lookup(self, token: str) -> Principal | None:
        try:
            principal = self.store.authenticate(token)
        except KeysFileError as exc:
            # A damaged file is the operator's to fix, not the caller's fault: 503, no
            # failure counted, and one log line per damaged version of the file.
            if exc.stamp != self._damage_logged:
                self._damage_logged = exc.stamp
                log.error("API keys file damaged", file=str(self.store.path), error=str(exc))
            raise HTTPException(503, str(exc)) from None
        self._damage_logged = False
        return principal

    def authorize(self, request: Request, principal: Principal, needed: Role) -> None:
        """403 when the principal's role is below `needed`."""
        if principal.role.allows(needed):
            return
        log.warning("forbidden", key=principal.name, role=principal.role.value,
                    needed=needed.value, path=request.url.path)  # fmt: skip
        raise HTTPException(
            403,
            f"key '{principal.name}' has the {principal.role.value} role; "
            f"this needs {needed.value}",
        )


async def _send_json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """413 for a request body over `max_bytes`: when the route starts reading a body whose
    Content-Length says so, or as soon as a streamed (chunked) body crosses the cap, without
    buffering more than that. Nothing is answered before the route reads, so the key check
    (which runs first, see `bessai.api.deps`) answers an unauthenticated caller whatever it
    sends."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        announced = 0
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    announced = int(value)
                except ValueError:
                    await _send_json(send, 400, "Content-Length is not a number")
                    return
        received = 0
        too_large = f"request body over the {self.max_bytes} byte limit"

        async def limited() -> Message:
            nonlocal received
            if announced > self.max_bytes:
                # Raised inside the route's body read, so FastAPI answers it as a 413.
                raise HTTPException(413, too_large)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, too_large)
            return message

        await self.app(scope, limited, send)


PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class SecurityHeaders:
    """Headers every response carries; API answers are never cached (they hold live state)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"content-security-policy", PAGE_CSP.encode()),
                ]
                if path.startswith("/api/"):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
