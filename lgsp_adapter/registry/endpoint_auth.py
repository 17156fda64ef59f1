"""How the daemon proves itself to an agency system's endpoint: the credential shapes an endpoint
in the registry may carry, each validated so that it can travel in a request as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NoAuth(_Section):
    """The endpoint needs no credentials (a system on the same host, say)."""

    kind: Literal["none"] = "none"


MASK = "**********"  # how a secret is shown; never one itself


def _sendable(secret: SecretStr) -> SecretStr:
    """A secret that can travel in a header: not empty, no control characters (a CR/LF would
    split the request), and not the mask an API answer shows in its place (a record read and
    sent back must not replace the real secret with the mask)."""
    value = secret.get_secret_value()
    if not value:
        raise ValueError("a secret cannot be empty")
    if not value.isprintable():
        raise ValueError("a secret cannot hold control characters (CR, LF, ...)")
    if value == MASK:
        raise ValueError(
            f"{MASK} is how a secret is shown, not a secret: send the real one, or leave auth "
            "out of the change to keep it"
        )
    return secret


Sendable = Annotated[SecretStr, AfterValidator(_sendable)]


class BearerAuth(_Section):
    """``Authorization: Bearer <token>``."""

    kind: Literal["bearer"]
    token: Sendable


class BasicAuth(_Section):
    """``Authorization: Basic`` with a user name and password."""

    kind: Literal["basic"]
    # No colon (it separates the two) and nothing unprintable: RFC 7617.
    username: str = Field(min_length=1, max_length=200, pattern=r"^[^:\x00-\x1f\x7f]+$")
    password: Sendable


class HmacAuth(_Section):
    """Each push signed with a shared secret (``X-LGSP-Signature``, see docs/registry.md), for
    systems that want to know a packet came from the exchange without running TLS client auth."""

    kind: Literal["hmac"]
    key_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    secret: Sendable = Field(description="At least 32 characters.")

    @field_validator("secret")
    @classmethod
    def _strong_enough(cls, secret: SecretStr) -> SecretStr:
        if len(secret.get_secret_value()) < 32:
            raise ValueError("an HMAC secret must be at least 32 characters")
        return secret


class MutualTlsAuth(_Section):
    """A client certificate presented on the TLS handshake (the endpoint must be https)."""

    kind: Literal["mtls"]
    certificate: Path = Field(description="PEM file of the certificate (and its chain).")
    private_key: Path = Field(description="PEM file of its private key, unencrypted.")


class AxisAuth(_Section):
    """The system id and secret this daemon signs with, as an agency system does, when the
    endpoint is a national axis (``mode = "axis"``)."""

    kind: Literal["axis"]
    system_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")
    secret: Sendable


EndpointAuth = Annotated[
    NoAuth | BearerAuth | BasicAuth | HmacAuth | MutualTlsAuth | AxisAuth,
    Field(discriminator="kind"),
]
