"""`[sites.vpp]`: a site as an OpenADR 3.1 VEN toward a utility's or aggregator's VTN
(docs/vpp.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from bessai.config.sections import _Section


class VppConfig(_Section):
    """This site as an OpenADR 3.1 VEN toward a utility's or an aggregator's VTN
    (docs/vpp.md). The secret is better given by environment, e.g.
    ``BESSAI_SITES__0__VPP__CLIENT_SECRET``."""

    enabled: bool = False
    vtn_url: str = Field(
        default="", description="the VTN's base URL, e.g. https://vtn/openadr3/3.1.0"
    )
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    token_url: str | None = Field(
        default=None, description="OAuth2 token endpoint; unset: asked from the VTN's /auth/server"
    )
    client_auth: Literal["form", "basic"] = Field(
        default="form", description="credentials in the token request's form body or a Basic header"
    )
    scope: str = ""
    verify_tls: bool = True
    ca_file: Path | None = Field(default=None, description="extra CA bundle for the VTN's TLS")
    ven_name: str = Field(default="", description="unset: the site id")
    resource_name: str = "battery"
    programs: list[str] = Field(
        default_factory=list, description="program names to follow; empty: every visible program"
    )
    poll_s: float = Field(default=30.0, ge=0.05, le=3600)
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    limit_margin_w: float = Field(
        default=50.0, ge=0, le=1e6, description="stay this far inside a capacity limit"
    )
    callback_url: str | None = Field(
        default=None,
        description="where the VTN can reach this gateway's /api/v1/vpp/notify/<site> route: "
        "the VEN subscribes by webhook and polls at once when notified; unset: polling only",
    )
    price_charge_below: float | None = Field(
        default=None, description="PRICE events: charge at full power at or below this price"
    )
    price_discharge_above: float | None = Field(
        default=None, description="PRICE events: discharge at full power at or above this price"
    )

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.enabled and not (self.vtn_url and self.client_id):
            raise ValueError("an enabled VEN needs vtn_url and client_id")
        if self.callback_url and not self.callback_url.startswith(("http://", "https://")):
            raise ValueError(f"callback_url {self.callback_url!r} is not an http(s) URL")
        if self.vtn_url and not self.vtn_url.startswith(("http://", "https://")):
            raise ValueError(f"vtn_url {self.vtn_url!r} is not an http(s) URL")
        low, high = self.price_charge_below, self.price_discharge_above
        if low is not None and high is not None and low >= high:
            raise ValueError(
                f"price_charge_below {low:g} must be below price_discharge_above {high:g}"
            )
        return self
