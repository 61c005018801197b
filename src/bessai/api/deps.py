"""What every router shares: the gateway context (on `app.state`), the key-and-role checks, the
site lookup and the page-size cap, as FastAPI dependencies.

Keys are checked before the request body is read. FastAPI parses a body before it solves a
route's dependencies, so a plain dependency would answer a malformed body with 422 (or a
non-UTF-8 one with 400) before it looked at the key. `AuthFirstRoute`, the route class of every
router, runs the route's `RoleCheck` first: an unauthenticated request gets 401 whatever its
body, a read key on a control route 403, and only then is the body read and validated. The same
check is also the route's ordinary dependency, which publishes the security schemes in the
OpenAPI spec and hands the principal to the route (without checking the key twice).
"""

# No `from __future__ import annotations`: FastAPI reads the dependencies' annotations at run
# time, and a callable instance (RoleCheck) has no module globals to resolve strings against.

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request, Response, Security
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials

from bessai.api.keys import Principal, Role
from bessai.api.security import Authorizer, bearer_scheme, header_scheme
from bessai.config import ApiConfig
from bessai.control.gateway import Gateway
from bessai.control.site import SiteRunner
from bessai.observe.monitor import Monitor
from bessai.vpp.ven import Ven

#: The highest page size any configuration may allow (`api.max_page_size` is at most this).
PAGE_SIZE_CEILING = 10_000


class EventHub:
    """Wakes the live streams when any site finishes a cycle or an alert changes.

    Each notification bumps a generation; a stream waits for a generation newer than the one
    it last sent, so a notification that arrives while the stream is busy (between two waits)
    is not lost."""

    def __init__(self) -> None:
        self.generation = 0
        self._changed = asyncio.Condition()
        self._pending = False

    def notify(self, *_: object) -> None:
        self.generation += 1
        if not self._pending:
            self._pending = True
            asyncio.get_running_loop().create_task(self._wake())

    async def _wake(self) -> None:
        self._pending = False
        async with self._changed:
            self._changed.notify_all()

    async def wait(self, after: int, timeout_s: float) -> bool:
        """True once the generation is past `after` (at once if it already is), False when
        `timeout_s` passes first."""
        if self.generation > after:
            return True
        try:
            async with asyncio.timeout(timeout_s), self._changed:
                await self._changed.wait_for(lambda: self.generation > after)
        except TimeoutError:
            return False
        return True


@dataclass(slots=True)
class ApiContext:
    """The gateway as the routes see it; one per app, in `app.state.ctx`."""

    monitor: Monitor
    auth: Authorizer
    hub: EventHub
    #: the OpenADR VENs of the sites that have one (routes/vpp.py), by site id
    vens: dict[str, Ven] = field(default_factory=dict)
    open_streams: int = 0

    @property
    def gateway(self) -> Gateway:
        return self.monitor.gateway

    @property
    def config(self) -> ApiConfig:
        return self.monitor.gateway.config.api


async def context(request: Request) -> ApiContext:
    """The app's context (a dependency). The dependencies here are `async def`: FastAPI runs
    a plain `def` dependency in its thread pool, a hop every request would pay for nothing."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(context)]
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)]
HeaderKey = Annotated[str | None, Security(header_scheme)]


class RoleCheck:
    """The dependency that lets a request in with a key of at least `role`."""

    def __init__(self, role: Role) -> None:
        self.role = role

    async def __call__(
        self, request: Request, bearer: BearerCredentials, header_key: HeaderKey
    ) -> Principal:
        auth = (await context(request)).auth
        principal = getattr(request.state, "principal", None)
        if not isinstance(principal, Principal):
            token = bearer.credentials if bearer is not None else header_key
            principal = auth.authenticate(request, token)
            request.state.principal = principal
        auth.authorize(request, principal, self.role)
        return principal

    async def check(self, request: Request) -> Principal:
        """The same check, reading the headers itself (before FastAPI's dependencies run)."""
        return await self(request, await bearer_scheme(request), await header_scheme(request))


read_key = RoleCheck(Role.READ)
control_key = RoleCheck(Role.CONTROL)
#: for `dependencies=[...]` of routes that do not use the principal
READ = Depends(read_key)
Reader = Annotated[Principal, Depends(read_key)]
Controller = Annotated[Principal, Depends(control_key)]


async def metrics_access(
    request: Request, bearer: BearerCredentials, header_key: HeaderKey
) -> None:
    """A read key for /metrics unless `api.public_metrics` (the default, for scrapers); the
    gateway's and the fleet's /metrics alike."""
    if not request.app.state.ctx.config.public_metrics:
        await read_key(request, bearer, header_key)


def _role_check(dependant: Dependant) -> RoleCheck | None:
    """The strictest RoleCheck among a route's dependencies, nested ones included."""
    found: RoleCheck | None = None
    stack = [dependant]
    while stack:
        current = stack.pop()
        if isinstance(current.call, RoleCheck) and (
            found is None or current.call.role.rank > found.role.rank
        ):
            found = current.call
        stack.extend(current.dependencies)
    return found


class AuthFirstRoute(APIRoute):
    """A route that checks the key and role before FastAPI reads and validates the body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        check = _role_check(self.dependant)
        if check is None:
            return handler

        async def authenticated(request: Request) -> Response:
            await check.check(request)
            return await handler(request)

        return authenticated


async def site_of(site_id: str, ctx: Ctx) -> SiteRunner:
    """The site named in the path, or 404 naming the sites there are."""
    site = ctx.gateway.sites.get(site_id)
    if site is None:
        known = ", ".join(sorted(ctx.gateway.sites))
        raise HTTPException(404, f"unknown site {site_id!r}; sites: {known}")
    return site


Site = Annotated[SiteRunner, Depends(site_of)]


async def page_limit(
    ctx: Ctx, limit: Annotated[int, Query(ge=1, le=PAGE_SIZE_CEILING)] = 50
) -> int:
    """`limit`, capped at `api.max_page_size` (published as the parameter's maximum)."""
    cap = ctx.config.max_page_size
    if limit > cap:
        # The shape of every other validation error, so clients parse one format.
        raise RequestValidationError(
            [
                {
                    "type": "less_than_equal",
                    "loc": ("query", "limit"),
                    "msg": f"Input should be less than or equal to {cap} (api.max_page_size)",
                    "input": limit,
                    "ctx": {"le": cap},
                }
            ]
        )
    return limit


PageLimit = Annotated[int, Depends(page_limit)]
