"""The VEN's HTTP session with a VTN: OAuth2 client credentials (form body by default, HTTP
Basic as an option), TLS verified by default, the token renewed before it expires and once
more on a 401. Any transport failure or server error is `VtnUnavailableError`: the VEN's outage
policy takes over (docs/vpp.md, "When the VTN is down")."""

from __future__ import annotations

import time
from typing import Any

import httpx

from bessai.config import VppConfig
from bessai.errors import BessaiError

#: renew a token this long before the VTN says it expires
TOKEN_EARLY_S = 30.0


class VtnUnavailableError(BessaiError):
    """The VTN did not answer, or answered with a server error."""


class VtnRefusedError(BessaiError):
    """The VTN answered a request with a 4xx: our request (or our credentials) is wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class VtnSession:
    """Authenticated JSON requests to one VTN."""

    def __init__(self, config: VppConfig, http: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.base = config.vtn_url.rstrip("/")
        verify: Any = config.verify_tls
        if config.verify_tls and config.ca_file is not None:
            verify = str(config.ca_file)
        self._http = http or httpx.AsyncClient(verify=verify, timeout=config.timeout_s)
        self._token: str | None = None
        self._token_until = 0.0

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _token_url(self) -> str:
        if self.config.token_url:
            return self.config.token_url
        try:
            answer = await self._http.get(f"{self.base}/auth/server")
            if answer.status_code == 200:
                return str(answer.json()["tokenURL"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            pass
        return f"{self.base}/auth/token"

    async def _fetch_token(self) -> str:
        cfg = self.config
        secret = cfg.client_secret.get_secret_value()
        form = {"grant_type": "client_credentials"}
        if cfg.scope:
            form["scope"] = cfg.scope
        url = await self._token_url()
        try:
            if cfg.client_auth == "basic":
                auth = httpx.BasicAuth(cfg.client_id, secret)
                answer = await self._http.post(url, data=form, auth=auth)
            else:
                form |= {"client_id": cfg.client_id, "client_secret": secret}
                answer = await self._http.post(url, data=form)
        except httpx.HTTPError as exc:
            raise VtnUnavailableError(f"token request failed: {exc!r}") from None
        if answer.status_code >= 500:
            raise VtnUnavailableError(f"token endpoint answered {answer.status_code}")
        if answer.status_code != 200:
            raise VtnRefusedError(
                answer.status_code, f"token refused ({answer.status_code}): {answer.text[:200]}"
            )
        body = answer.json()
        self._token = str(body["access_token"])
        lifetime_s = float(body.get("expires_in") or 3600)
        self._token_until = time.monotonic() + max(1.0, lifetime_s - TOKEN_EARLY_S)
        return self._token

    async def request(
        self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        """One JSON request; the answer's JSON (None for an empty body)."""
        for attempt in (1, 2):
            token = self._token
            if token is None or time.monotonic() >= self._token_until:
                token = await self._fetch_token()
            headers = {"Authorization": f"Bearer {token}"}
            try:
                answer = await self._http.request(
                    method, f"{self.base}{path}", json=body, params=params, headers=headers
                )
            except httpx.HTTPError as exc:
                raise VtnUnavailableError(f"{method} {path}: {exc!r}") from None
            if answer.status_code == 401 and attempt == 1:
                self._token = None  # revoked or expired early: one fresh token, then give up
                continue
            if answer.status_code >= 500:
                raise VtnUnavailableError(f"{method} {path} answered {answer.status_code}")
            if answer.status_code >= 400:
                raise VtnRefusedError(
                    answer.status_code,
                    f"{method} {path} refused ({answer.status_code}): {answer.text[:200]}",
                )
            return answer.json() if answer.content else None
        raise VtnRefusedError(401, f"{method} {path}: the VTN refuses our fresh token")
