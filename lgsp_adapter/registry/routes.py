"""Routes: a range of agency codes reached through one endpoint, such as every code of the
Government Office (``*.*.*.G22``) or of another province (``*.*.*.H40``), sent upstream to the
national axis, where listing each agency of the range would take one entry (and, on RabbitMQ,
one set of queues) per agency.

A pattern has the code's four words, each the word itself or ``*`` for any: the shape of a
topic binding, so that on RabbitMQ a route is one queue bound by its patterns (``docs/bus.md``).
Because a topic exchange delivers a packet to every queue whose binding matches, a code may
belong to one route at most and to no agency served or known by name: an overlap would
deliver twice, so it is refused where routes and agencies are configured.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.registry.agencies import DeliveryMode, Endpoint, ServedAgency, in_pattern

_WORDS = (r"[0-9]{3}", r"[0-9]{2}", r"[0-9]{2}", r"[A-Z][0-9]{2}")
PREFIX = "route-"  # a route's queue key: never an agency code's shape


def check_pattern(pattern: str) -> str:
    """``pattern`` when it is four words of a code, each the word itself or ``*``."""
    words = pattern.split(".")
    if len(words) != len(_WORDS) or not all(
        word == "*" or re.fullmatch(shape, word) for word, shape in zip(words, _WORDS, strict=False)
    ):
        raise ValueError(
            f"{pattern!r} is not a code pattern: four words as in 000.00.00.X00, each the "
            "word itself or *"
        )
    if set(words) == {"*"}:
        raise ValueError("*.*.*.* would take every code, the agencies served here too")
    return pattern


def matches(pattern: str, code: str) -> bool:
    """Whether ``code`` falls in ``pattern``."""
    return in_pattern(pattern, code)


def overlap(one: str, other: str) -> bool:
    """Whether some code falls in both patterns."""
    return all(
        a == b or "*" in (a, b) for a, b in zip(one.split("."), other.split("."), strict=False)
    )


class Route(BaseModel):
    """A range of codes and the endpoint that reaches them all."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$", description="Names its queues.")
    codes: list[str] = Field(
        min_length=1, max_length=200, description="Code patterns, as `*.*.*.G22`."
    )
    label: str = Field("", max_length=300, description="Who they are, for people.")
    endpoint: Endpoint
    enabled: bool = True

    @field_validator("codes")
    @classmethod
    def _patterns(cls, codes: list[str]) -> list[str]:
        return [check_pattern(code) for code in codes]

    @model_validator(mode="after")
    def _reachable(self) -> Route:
        if self.endpoint.mode is DeliveryMode.PULL:
            raise ValueError(f"route {self.name}: a range of codes is pushed or sent to an axis")
        if self.endpoint.receipts_url is not None:
            raise ValueError(
                f"route {self.name}: no receipts_url; its codes' senders are elsewhere"
            )
        return self

    @property
    def key(self) -> str:
        """Its queues' name on the bus, where an agency's is its code."""
        return f"{PREFIX}{self.name}"

    def takes(self, code: AgencyCode | str) -> bool:
        """Whether ``code`` is in the route's range."""
        return any(matches(pattern, str(code)) for pattern in self.codes)

    def agency(self, code: AgencyCode) -> ServedAgency:
        """An agency of the range, as the exchange serves it: the route's endpoint."""
        name = f"{self.label or self.name} ({code})"
        return ServedAgency(code=code, name=name, endpoint=self.endpoint, enabled=self.enabled)


class BusSenders(BaseModel):
    """Agencies served by other daemons on this bus, named by a range rather than one by one:
    packets claiming to come from them are believed only from the broker account the range is
    bound to. A sender neither served here, known by name, across a bridge, nor in such a
    range is refused: any account that may write the exchange could claim to be it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    codes: list[str] = Field(
        min_length=1, max_length=200, description="Code patterns, as `*.*.*.H40`."
    )
    bus_user: str = Field(
        min_length=1,
        max_length=200,
        description="The broker account of the daemon serving them: the only one believed.",
    )
    label: str = Field("", max_length=300, description="Who they are, for people.")

    @field_validator("codes")
    @classmethod
    def _patterns(cls, codes: list[str]) -> list[str]:
        return [check_pattern(code) for code in codes]

    def takes(self, code: AgencyCode | str) -> bool:
        """Whether ``code`` is in the range."""
        return any(matches(pattern, str(code)) for pattern in self.codes)


class Ranged(Protocol):
    """A range of codes under a name: a route, or a bridge to another bus."""

    @property
    def name(self) -> str: ...

    @property
    def codes(self) -> list[str]: ...


def check_ranges(routes: Sequence[Ranged], named: list[str]) -> None:
    """``ValueError`` unless each code belongs to one range at most (a route's or a bridge's)
    and no code of ``named`` (the agencies served or known by name) to any: a topic exchange
    would deliver twice."""

    def what(item: Ranged) -> str:
        return f"{type(item).__name__.lower()} {item.name}"

    names = [what(route) for route in routes]
    if len(set(names)) != len(names):
        raise ValueError("two routes, or two bridges, share a name")
    patterns = [(what(route), pattern) for route in routes for pattern in route.codes]
    for index, (name, pattern) in enumerate(patterns):
        for other_name, other in patterns[index + 1 :]:
            if other_name != name and overlap(pattern, other):
                raise ValueError(
                    f"{name} ({pattern}) and {other_name} ({other}) overlap: a code in "
                    "both would be delivered twice"
                )
    for code in named:
        inside = next(
            (route for route in routes if any(matches(p, code) for p in route.codes)), None
        )
        if inside is not None:
            raise ValueError(
                f"{code} is an agency by name and in {what(inside)}'s range: it would be "
                "delivered twice; narrow the range or drop the agency"
            )
