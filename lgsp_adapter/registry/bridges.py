"""Bridges: ranges of agency codes on another bus, such as a ministry's codes on the national
hub's bus (upstream), a district's on its own (downstream), another province's (a peer).

With the agencies served here and the routes, they make the routing table by agency code: a
code is served here (by name or through a route's endpoint), known on this bus (another daemon
serves it), or across a bridge. A bridge is RabbitMQ's own machinery, not a relay of ours: one
queue on this bus bound by the bridge's patterns, and a shovel (declared from these settings)
that moves what it holds to the far bus's arrivals exchange with publisher confirms, acking here
only once the far broker confirmed (``docs/inter-level.md``).

What crosses in the other direction was published on this bus by the far bus's shovel, under
the account named here (``arrivals_user``): that account is the only one believed to speak for
the bridge's codes, and it speaks for no other.
"""

from __future__ import annotations

import functools
from enum import StrEnum
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.registry.routes import check_pattern, matches

PREFIX = "bridge-"  # a bridge's queue key: never an agency code's shape, nor a route's


class Level(StrEnum):
    """Where the far bus stands from this one."""

    UPSTREAM = "upstream"  # the level above: a ministry's bus, the national hub
    DOWNSTREAM = "downstream"  # a level below: a district's bus
    PEER = "peer"  # the same level: another province's bus


class Bridge(BaseModel):
    """A range of codes on another bus, and how to reach it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$", description="Names its queue.")
    level: Level = Field(description="upstream, downstream or peer: for people and the logs.")
    codes: list[str] = Field(
        min_length=1,
        max_length=200,
        description="Code patterns on the far bus, as `*.*.*.G12` (receipts and status packets "
        "for the senders there go back across the far bus's own bridge).",
    )
    label: str = Field("", max_length=300, description="Whose bus it is, for people.")
    url: SecretStr = Field(
        description="The far bus, `amqp[s]://account:password@host:port/vhost`: the account the "
        "shovel publishes there with, which may write to its arrivals exchange and nothing else."
    )
    exchange: str = Field(
        "lgsp.packets",
        pattern=r"^[A-Za-z0-9_.-]{1,200}$",
        description="The far bus's exchange name; the shovel publishes to `<it>.arrivals`.",
    )
    arrivals_user: str = Field(
        min_length=1,
        max_length=200,
        description="The account the far bus's shovel publishes here with: what arrives across "
        "this bridge is believed from it alone, and only for this bridge's codes.",
    )
    enabled: bool = Field(True, description="Off: the shovel is removed, packets wait here.")

    @field_validator("codes")
    @classmethod
    def _patterns(cls, codes: list[str]) -> list[str]:
        return [check_pattern(code) for code in codes]

    @field_validator("url")
    @classmethod
    def _amqp(cls, url: SecretStr) -> SecretStr:
        parts = urlsplit(url.get_secret_value())
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname or not parts.username:
            raise ValueError("a bridge's url is amqp[s]://account:password@host:port/vhost")
        return url

    @property
    def key(self) -> str:
        """Its queue's name on the bus, where an agency's is its code."""
        return f"{PREFIX}{self.name}"

    @property
    def far_user(self) -> str:
        """The account the shovel publishes with on the far bus (the url's)."""
        return unquote(urlsplit(self.url.get_secret_value()).username or "")

    @property
    def far_address(self) -> str:
        """The far bus without its credentials, for logs and audit entries."""
        parts = urlsplit(self.url.get_secret_value())
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}{parts.path or '/'}"

    def takes(self, code: AgencyCode | str) -> bool:
        """Whether ``code`` is in the bridge's range."""
        return any(matches(pattern, str(code)) for pattern in self.codes)

    @functools.cached_property
    def description(self) -> str:
        """One line for audit entries: which bus, at which level (made once: asked for every
        packet that crosses)."""
        who = f"{self.label} " if self.label else ""
        return f"bus {self.name} ({who}{self.level.value}, {self.far_address})"
