"""``Directory``: the questions the exchange asks about agencies and clients, answered from
the registry (which updates it in place when an integrator changes something, so a change
applies to the next packet without a restart), the settings' known agencies, and the ranges of
codes reached through one endpoint (routes) or across a bridge to another bus.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lgsp_adapter.errors import PermanentError
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.registry.agencies import (
    Client,
    IssuedToken,
    KnownAgency,
    ServedAgency,
    token_digest,
)
from lgsp_adapter.registry.bridges import Bridge
from lgsp_adapter.registry.routes import BusSenders, Route


@dataclass(frozen=True, slots=True)
class _Snapshot:
    served: dict[AgencyCode, ServedAgency]
    known: frozenset[AgencyCode]
    tokens: dict[str, Client]
    wants_receipts: frozenset[str]


class Directory:
    """Answers the questions the exchange asks about agencies and clients.

    The registry replaces what it knows in one assignment (``update``), so a question asked
    while an integrator changes something sees the registry before or after, never half."""

    def __init__(
        self,
        *,
        served: Sequence[ServedAgency],
        known: Sequence[KnownAgency],
        clients: Sequence[Client],
        issued: Iterable[IssuedToken] = (),
        routes: Sequence[Route] = (),
        bridges: Sequence[Bridge] = (),
        senders: Sequence[BusSenders] = (),
    ) -> None:
        self._routes = tuple(routes)
        self._senders = tuple(senders)
        self._bridges = tuple(bridges)
        self._arriving = {bridge.arrivals_user: bridge for bridge in bridges}
        self._bridge_of = functools.lru_cache(maxsize=4096)(self._bridge)
        # A range's agency, and the range of a code, found once per code: the exchange asks
        # several times a packet.
        self._in_range = functools.lru_cache(maxsize=4096)(self._range_agency)
        self._ranges = functools.lru_cache(maxsize=4096)(self._range)
        self._known_elsewhere = [agency.code for agency in known]
        self._bus_users = {str(a.code): a.bus_user for a in known if a.bus_user}
        self._configured = {
            token_digest(c.token.get_secret_value()): c for c in clients if c.token is not None
        }
        self._now = self._snapshot(served, issued)

    def _snapshot(self, served: Sequence[ServedAgency], issued: Iterable[IssuedToken]) -> _Snapshot:
        by_code = {agency.code: agency for agency in served}
        tokens = {token.digest: token.client for token in issued}
        tokens.update(self._configured)  # the settings' clients win a (refused) collision
        receipts = frozenset(str(a.code) for a in served if a.endpoint.receipts_url)
        return _Snapshot(by_code, frozenset(self._known_elsewhere) | set(by_code), tokens, receipts)

    def update(self, served: Sequence[ServedAgency], issued: Iterable[IssuedToken]) -> None:
        """Serve ``served`` and honour ``issued`` from now on (the registry changed)."""
        self._now = self._snapshot(served, issued)

    def served(self, code: AgencyCode) -> ServedAgency | None:
        """The agency if this daemon serves it: by name, or as one of a route's range (then
        with the route's endpoint, and enabled as the route is)."""
        agency = self._now.served.get(code)
        return agency if agency is not None or not self._routes else self._in_range(code)

    def _range_agency(self, code: AgencyCode) -> ServedAgency | None:
        route = self.range_of(str(code))
        return None if route is None else route.agency(code)

    def route_for(self, code: AgencyCode | str) -> Route | None:
        """The route that serves ``code``, if any: the one whose range holds it, unless it is
        an agency served by name (which the settings and the registry keep out of ranges)."""
        if not self._routes:
            return None
        parsed = code if isinstance(code, AgencyCode) else AgencyCode.read(code).code
        if parsed is not None and parsed in self._now.served:
            return None
        return self.range_of(str(code))

    def range_of(self, code: str) -> Route | None:
        """The route whose range holds ``code``, served by name or not."""
        return self._ranges(code)

    def _range(self, code: str) -> Route | None:
        return next((route for route in self._routes if route.takes(code)), None)

    @property
    def routes(self) -> tuple[Route, ...]:
        """The ranges of codes this daemon reaches through one endpoint each."""
        return self._routes

    def route_keyed(self, key: str) -> Route | None:
        """The route whose queues are named ``key`` (see ``queue_key``), if any."""
        return next((route for route in self._routes if route.key == key), None)

    def queue_key(self, code: str) -> str:
        """The name of the queues a packet for ``code`` waits in: the code's own, or its
        route's (one set of queues for the whole range)."""
        route = self.route_for(code)
        return code if route is None else route.key

    @property
    def served_codes(self) -> list[AgencyCode]:
        """Every agency this daemon serves, in code order."""
        return sorted(self._now.served)

    @property
    def wants_receipts(self) -> frozenset[str]:
        """The served agencies whose endpoint has a ``receipts_url``."""
        return self._now.wants_receipts

    def is_known(self, code: AgencyCode) -> bool:
        """Whether the code can be routed to (served here, in a route's range, served
        elsewhere on the bus, or across a bridge)."""
        return (
            code in self._now.known
            or self.route_for(code) is not None
            or self.bridge_for(str(code)) is not None
        )

    def bus_user(self, code: str) -> str | None:
        """The broker account that alone may speak for ``code`` on the bus, when configured:
        for a code across a bridge, the account the far bus's shovel publishes here with."""
        bridge = self.bridge_for(code)
        if bridge is not None:
            return bridge.arrivals_user
        named = self._bus_users.get(code)
        if named is not None:
            return named
        return next((rule.bus_user for rule in self._senders if rule.takes(code)), None)

    def knows_sender(self, code: str) -> bool:
        """Whether a packet on the bus may claim to come from ``code``: an agency served here,
        known by name, across a bridge, or in a ``[[bus_senders]]`` range."""
        try:
            parsed = AgencyCode.parse(code)
        except PermanentError:
            return False
        return self.is_known(parsed) or any(rule.takes(code) for rule in self._senders)

    def bridge_for(self, code: str) -> Bridge | None:
        """The bridge whose range holds ``code``: the bus it lives on."""
        return self._bridge_of(code) if self._bridges else None

    def _bridge(self, code: str) -> Bridge | None:
        return next((bridge for bridge in self._bridges if bridge.takes(code)), None)

    def bridge_arriving_as(self, user: str | None) -> Bridge | None:
        """The bridge whose far shovel publishes here as ``user``, if any."""
        return None if user is None else self._arriving.get(user)

    def overreach(self, publisher: str | None, code: str) -> Bridge | None:
        """The bridge whose account ``publisher`` is, when it speaks for ``code`` outside the
        bridge's range: a far bus's shovel vouches for that bus's codes, never for others."""
        bridge = self.bridge_arriving_as(publisher)
        return bridge if bridge is not None and not bridge.takes(code) else None

    @property
    def bridges(self) -> tuple[Bridge, ...]:
        """The ranges of codes on other buses."""
        return self._bridges

    def configured_token(self, digest: str) -> bool:
        """Whether a token with this digest is one of the settings' clients'."""
        return digest in self._configured

    def client_for(self, token: str) -> Client | None:
        """The client presenting ``token``. Looked up by the token's digest: the time a lookup
        takes depends on a hash the caller cannot steer, so it tells nothing about tokens."""
        return self._now.tokens.get(token_digest(token))
