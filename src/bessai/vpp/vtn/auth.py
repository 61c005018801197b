"""OAuth2 client credentials for the VTN: the clients it knows (business logic or VEN), the
token endpoint (credentials in the form body or an HTTP Basic header, RFC 6749 2.3.1) and the
scopes of the 3.1.0 document per role."""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, unquote

from bessai.errors import BessaiError

Role = Literal["bl", "ven"]
BL_SCOPES = frozenset(
    {"read_all", "read_targets", "read_ven_objects", "write_programs", "write_events",
     "write_subscriptions", "write_vens"}
)  # fmt: skip
VEN_SCOPES = frozenset(
    {"read_targets", "read_ven_objects", "write_reports", "write_subscriptions", "write_vens"}
)
TOKEN_LIFETIME_S = 3600


@dataclass(frozen=True, slots=True)
class VtnClient:
    """One client the VTN accepts: its id, secret and role."""

    client_id: str
    secret: str
    role: Role

    @property
    def scopes(self) -> frozenset[str]:
        """What the role may do."""
        return BL_SCOPES if self.role == "bl" else VEN_SCOPES


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a bearer token belongs to."""

    client_id: str
    role: Role
    scopes: frozenset[str]


class TokenError(Exception):
    """A token request refused: the RFC 6749 error code, a description, the HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def parse_client(text: str) -> VtnClient:
    """``ID:SECRET:ROLE`` (role bl or ven) from the command line."""
    parts = text.rsplit(":", 2)
    if len(parts) != 3 or parts[2] not in ("bl", "ven") or not parts[0] or not parts[1]:
        raise BessaiError(f"client {text!r}: expected ID:SECRET:ROLE with role bl or ven")
    role: Role = "bl" if parts[2] == "bl" else "ven"
    return VtnClient(parts[0], parts[1], role)


@dataclass
class TokenIssuer:
    """Opaque bearer tokens for known clients, kept in memory until they expire."""

    clients: dict[str, VtnClient]
    lifetime_s: int = TOKEN_LIFETIME_S
    _tokens: dict[str, tuple[Principal, float]] = field(default_factory=dict)

    def issue(self, body: bytes, authorization: str | None) -> dict[str, object]:
        """Answer a token request (form body, optional Basic header)."""
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            raise TokenError("unsupported_grant_type", "grant_type must be client_credentials")
        client_id, secret = _credentials(form, authorization)
        client = self.clients.get(client_id)
        if client is None or not hmac.compare_digest(client.secret, secret):
            raise TokenError("invalid_client", "unknown client or wrong secret", 401)
        token = secrets.token_urlsafe(32)
        self._expire()
        self._tokens[token] = (
            Principal(client.client_id, client.role, client.scopes),
            time.monotonic() + self.lifetime_s,
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.lifetime_s,
            "scope": " ".join(sorted(client.scopes)),
        }

    def principal(self, token: str) -> Principal | None:
        """The client of a valid token, or None."""
        entry = self._tokens.get(token)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def _expire(self) -> None:
        now = time.monotonic()
        for token in [t for t, (_, until) in self._tokens.items() if until < now]:
            del self._tokens[token]


def _credentials(form: dict[str, str], authorization: str | None) -> tuple[str, str]:
    if authorization and authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise TokenError("invalid_request", "the Basic header is not base64", 400) from None
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise TokenError("invalid_request", "the Basic header has no ':'", 400)
        # RFC 6749 2.3.1: id and secret are form-urlencoded before the Basic encoding.
        return unquote(client_id), unquote(secret)
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if not client_id or not secret:
        raise TokenError("invalid_request", "client_id and client_secret are required", 400)
    return client_id, secret
