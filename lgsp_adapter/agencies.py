"""Who this daemon serves, where their packets go, and who may submit for whom.

This is the configured form of the registry: the agency codes this daemon serves (each with its
delivery endpoint), the other agencies it knows on the bus, and the client systems that submit
packets (each with a token and the agencies it may speak for). A later registry keeps the same
shape in the store and changes it live; the rest of the code asks ``Directory``, not the config.
"""

from __future__ import annotations

import hmac
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from lgsp_adapter.agency_code import AgencyCode


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DeliveryMode(StrEnum):
    """Push: we POST each packet to the agency system. Pull: it fetches from our inbox."""

    PUSH = "push"
    PULL = "pull"


class NoAuth(_Section):
    """The endpoint needs no credentials (a system on the same host, say)."""

    kind: Literal["none"] = "none"


class BearerAuth(_Section):
    """``Authorization: Bearer <token>``."""

    kind: Literal["bearer"]
    token: SecretStr


class BasicAuth(_Section):
    """``Authorization: Basic`` with a user name and password."""

    kind: Literal["basic"]
    username: str = Field(min_length=1)
    password: SecretStr


EndpointAuth = Annotated[NoAuth | BearerAuth | BasicAuth, Field(discriminator="kind")]


class Endpoint(_Section):
    """Where and how packets for one agency are delivered."""

    mode: DeliveryMode = DeliveryMode.PUSH
    url: AnyHttpUrl | None = Field(None, description="Required for push: where packets are POSTed.")
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

    @model_validator(mode="after")
    def _push_needs_url(self) -> Endpoint:
        if self.mode is DeliveryMode.PUSH and self.url is None:
            raise ValueError("a push endpoint needs a url")
        return self


class ServedAgency(_Section):
    """An agency whose packets this daemon receives and delivers."""

    code: AgencyCode
    name: str = Field(min_length=1)
    endpoint: Endpoint


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
    AUDITOR = "auditor"  # read the audit log, its proofs and checkpoints; submit nothing


class Client(_Section):
    """A caller of the HTTP API: its token, its role and, for an agency system, the agencies
    it may speak for."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    token: SecretStr
    role: Role = Role.AGENCY
    agencies: list[AgencyCode] = Field(default_factory=list)

    @model_validator(mode="after")
    def _agencies_fit_the_role(self) -> Client:
        if self.role is Role.AGENCY and not self.agencies:
            raise ValueError(f"client {self.name}: an agency system speaks for some agencies")
        if self.role is Role.AUDITOR and self.agencies:
            raise ValueError(f"client {self.name}: an auditor speaks for no agency")
        return self

    @field_validator("token")
    @classmethod
    def _long_enough(cls, token: SecretStr) -> SecretStr:
        if len(token.get_secret_value()) < 24:
            raise ValueError("a client token must be at least 24 characters")
        return token


class Directory:
    """Answers the questions the exchange asks about agencies and clients."""

    def __init__(
        self, *, served: list[ServedAgency], known: list[KnownAgency], clients: list[Client]
    ) -> None:
        self._served = {agency.code: agency for agency in served}
        self._known = {agency.code for agency in known} | set(self._served)
        self._bus_users = {str(a.code): a.bus_user for a in known if a.bus_user}
        self._clients = clients

    def served(self, code: AgencyCode) -> ServedAgency | None:
        """The agency if this daemon serves it."""
        return self._served.get(code)

    @property
    def served_codes(self) -> list[AgencyCode]:
        """Every agency this daemon serves, in code order."""
        return sorted(self._served)

    def is_known(self, code: AgencyCode) -> bool:
        """Whether the code can be routed to (served here or elsewhere on the bus)."""
        return code in self._known

    def bus_user(self, code: str) -> str | None:
        """The broker account that alone may speak for ``code`` on the bus, when configured."""
        return self._bus_users.get(code)

    def client_for(self, token: str) -> Client | None:
        """The client presenting ``token``, compared in constant time."""
        found = None
        for client in self._clients:
            # Compare against every client, so the time taken says nothing about which matched.
            if hmac.compare_digest(client.token.get_secret_value().encode(), token.encode()):
                found = client
        return found
