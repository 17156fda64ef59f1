"""Who this daemon serves, where their packets go, and who may submit for whom.

The same shapes serve the settings file and the live registry in the store (``registry``): the
agencies this daemon serves (each with its delivery endpoint), the other agencies it knows on
the bus, and the client systems that submit packets (each with a token and the agencies it may
speak for). The rest of the code asks ``directory.Directory``, which the registry updates in
place when an integrator changes something, so a change applies to the next packet without a
restart.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.packets.reader import KINDS
from lgsp_adapter.registry.endpoint_auth import AxisAuth, EndpointAuth, MutualTlsAuth, NoAuth
from lgsp_adapter.signatures import SignaturePolicy


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DeliveryMode(StrEnum):
    """Push: we POST each packet to the agency system. Pull: it fetches from our inbox. Axis:
    the agency is reached through a national axis (or another exchange speaking its
    protocol), which we send to as an agency system would and poll for what it has for us."""

    PUSH = "push"
    PULL = "pull"
    AXIS = "axis"


AXIS_KINDS = ("edoc", "status")  # what the axis carries: edXML documents and status packets


class Endpoint(_Section):
    """Where and how packets for one agency are delivered."""

    # The rule _push_needs_url checks, said in the schema too, so that an integrator's
    # tool (and the API fuzz) knows it before asking.
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"mode": {"const": "pull"}}, "required": ["mode"]},
            "else": {"properties": {"url": {"type": "string"}}, "required": ["url"]},
        },
    )

    mode: DeliveryMode = DeliveryMode.PUSH
    url: AnyHttpUrl | None = Field(
        None, description="Required for push (where packets are POSTed) and axis (its URL)."
    )
    timeout_s: float = Field(10.0, gt=0, le=300, description="Per attempt, connect to last byte.")
    auth: EndpointAuth = NoAuth()
    send_arrival_status: bool = Field(
        False, description="Send status 01 (arrived) to the sender of each document delivered."
    )
    receipts_url: AnyHttpUrl | None = Field(
        None,
        description="Where to POST transport receipts (JSON) of packets this agency sent: how "
        "each delivery ended. None: the sender asks GET /v1/packets/{id} instead.",
    )

    kinds: list[str] = Field(
        default_factory=list,
        max_length=len(KINDS),
        description="The packet kinds the agency's system takes; empty: every kind.",
    )
    translator: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Installed translator (`lgsp-adapter translate --list`) between our packets "
        "and the agency system's own format, both ways. None: it speaks our packets.",
    )
    retry_delays_s: list[Annotated[float, Field(gt=0, le=86_400)]] | None = Field(
        None,
        min_length=1,
        max_length=20,
        description="This endpoint's durable retry schedule; None: [delivery] retry_delays_s.",
    )
    tls_ca: Path | None = Field(
        None, description="PEM file of the CA that signed the endpoint's certificate, if private."
    )
    signature_policy: SignaturePolicy = Field(
        SignaturePolicy.RECORD,
        description="What signatures its system requires of edXML packets: `record` (deliver "
        "all, say what was found), `require-signed`, `require-valid` (refuse the rest with "
        "status 02 to the sender).",
    )

    @field_validator("url", "receipts_url")
    @classmethod
    def _no_credentials(cls, url: AnyHttpUrl | None) -> AnyHttpUrl | None:
        # A URL is shown to auditors and lands in delivery details; credentials go in auth.
        if url is not None and (url.username or url.password):
            raise ValueError("a URL may not carry credentials; put them in auth")
        return url

    @model_validator(mode="after")
    def _consistent(self) -> Endpoint:
        if self.mode is DeliveryMode.PUSH and self.url is None:
            raise ValueError("a push endpoint needs a url")
        if (self.mode is DeliveryMode.AXIS) != isinstance(self.auth, AxisAuth):
            raise ValueError('an axis endpoint, and only one, signs with auth kind "axis"')
        if self.mode is DeliveryMode.AXIS and self.url is None:
            raise ValueError("an axis endpoint needs the axis' url")
        if self.mode is DeliveryMode.AXIS and self.translator is not None:
            raise ValueError("an axis carries edXML as it is: no translator")
        if self.mode is DeliveryMode.AXIS and set(self.kinds) - set(AXIS_KINDS):
            raise ValueError(f"an axis carries only {', '.join(AXIS_KINDS)}")
        if isinstance(self.auth, MutualTlsAuth) and (
            self.url is None or self.url.scheme != "https"
        ):
            raise ValueError("a client certificate needs an https url")
        unknown = sorted(set(self.kinds) - KINDS)
        if unknown:
            raise ValueError(f"unknown packet kinds {unknown}; known: {sorted(KINDS)}")
        if len(set(self.kinds)) != len(self.kinds):
            raise ValueError("a packet kind is listed twice")
        return self

    def accepts(self, kind: str) -> bool:
        """Whether the agency's system takes packets of ``kind``."""
        if self.mode is DeliveryMode.AXIS and kind not in AXIS_KINDS:
            return False
        return not self.kinds or kind in self.kinds


class SigningFiles(_Section):
    """The agency's own key, with which the adapter signs what it writes on its behalf."""

    key_file: Path = Field(description="PEM private key (PKCS #8 or traditional).")
    certificate_file: Path = Field(description="PEM certificate, then its chain.")
    key_password: SecretStr | None = None


class Contact(_Section):
    """Who to call when the agency's system misbehaves."""

    name: str = Field("", max_length=200)
    email: str = Field("", max_length=200)
    phone: str = Field("", max_length=50)


class ServedAgency(_Section):
    """An agency whose packets this daemon receives and delivers."""

    code: AgencyCode
    name: str = Field(min_length=1, max_length=500)
    parent: AgencyCode | None = Field(
        None, description="The agency above it; default: the parent its code implies."
    )
    endpoint: Endpoint
    enabled: bool = Field(
        True,
        description="Disabled: packets to it are refused at submission and its deliveries wait "
        "on the retry schedule; its systems may not submit.",
    )
    contact: Contact | None = None
    signing: SigningFiles | None = Field(
        None, description="Sign the status packets the adapter sends on its behalf."
    )

    @model_validator(mode="after")
    def _not_its_own_parent(self) -> ServedAgency:
        if self.parent == self.code:
            raise ValueError("an agency is not its own parent")
        return self

    @property
    def parent_code(self) -> AgencyCode | None:
        """The agency above: as registered, else as the code implies."""
        return self.parent or self.code.parent


class KnownAgency(_Section):
    """An agency served by another daemon on the bus."""

    code: AgencyCode
    name: str = ""
    bus_user: str | None = Field(
        None,
        description="The broker account of the daemon serving it. When set, packets and "
        "receipts claiming to come from this agency are accepted only from that account.",
    )


class Role(StrEnum):
    """What a client may do."""

    AGENCY = "agency"  # submit packets for its agencies and follow them
    AUDITOR = "auditor"  # read the audit log, its proofs and checkpoints, and the registry
    INTEGRATOR = "integrator"  # change the registry of endpoints; submit nothing
    OPERATOR = "operator"  # replay or drop dead letters; read no document


class Client(_Section):
    """A caller of the HTTP API: its token, its role and, for an agency system, the agencies
    it may speak for."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._/-]+$")
    token: SecretStr | None = Field(
        None, description="In the settings; the registry's tokens are kept only as digests."
    )
    role: Role = Role.AGENCY
    agencies: list[AgencyCode] = Field(default_factory=list)
    ranges: list[str] = Field(
        default_factory=list,
        description="Code patterns of [[routes]] it speaks for too: every agency in them "
        "(an upstream axis, which sends for a ministry's codes).",
    )

    @model_validator(mode="after")
    def _agencies_fit_the_role(self) -> Client:
        if self.role is Role.AGENCY and not (self.agencies or self.ranges):
            raise ValueError(f"client {self.name}: an agency system speaks for some agencies")
        if self.role is not Role.AGENCY and (self.agencies or self.ranges):
            raise ValueError(f"client {self.name}: an {self.role.value} speaks for no agency")
        return self

    def speaks_for(self, code: str) -> bool:
        """Whether the client may send as ``code``: one of its agencies, or in its ranges."""
        return any(str(agency) == code for agency in self.agencies) or any(
            in_pattern(pattern, code) for pattern in self.ranges
        )

    @field_validator("token")
    @classmethod
    def _long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value()) < 24:
            raise ValueError("a client token must be at least 24 characters")
        return token


def in_pattern(pattern: str, code: str) -> bool:
    """Whether ``code`` falls in a code pattern (``routes``): each word the code's, or ``*``."""
    words = code.split(".")
    patterns = pattern.split(".")
    return len(words) == len(patterns) and all(
        p in ("*", w) for p, w in zip(patterns, words, strict=True)
    )


def with_secrets(model: BaseModel) -> dict[str, Any]:
    """``model`` as JSON data with its secrets in the clear: what the store keeps (the daemon
    must present them to endpoints) and what a settings digest covers. Never for display."""
    data: dict[str, Any] = json.loads(json.dumps(model.model_dump(mode="python"), default=_plain))
    return data


def _plain(value: object) -> object:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python")
    return str(value)  # codes, URLs, paths


def token_digest(token: str) -> str:
    """How a token is kept: its SHA-256, hex. Tokens are random and long, so a fast hash loses
    nothing against guessing, and a stolen store reveals no token that works."""
    # A header that is not UTF-8 reaches us surrogate-escaped: digest its bytes as they came.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A submitting token the registry issued: kept as its digest, never in the clear."""

    digest: str
    client: Client
