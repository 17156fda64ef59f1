"""Checks across the settings' sections: what each section accepts alone but the whole
cannot run with (an agency both served and known, a bridge's account that is also ours, a
client speaking for agencies served elsewhere). Each is refused at start, with the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from lgsp_adapter.registry.routes import Ranged, check_ranges, overlap

if TYPE_CHECKING:
    from lgsp_adapter.daemon.config import Settings


def check_consistent(settings: Settings) -> None:
    """``ValueError`` naming the first inconsistency (pydantic reports it as the settings')."""
    _agencies(settings)
    _bridges(settings)
    _clients(settings)
    budget = settings.attempt_budget()
    for code, endpoint in [
        *((str(a.code), a.endpoint) for a in settings.agencies),
        *((f"route {r.name}", r.endpoint) for r in settings.routes),
    ]:
        problem = budget.problem(code, endpoint)
        if problem is not None:
            raise ValueError(problem)


def _agencies(settings: Settings) -> None:
    served = [a.code for a in settings.agencies]
    if len(set(served)) != len(served):
        raise ValueError("an agency is listed twice in [[agencies]]")
    if set(served) & {a.code for a in settings.known_agencies}:
        raise ValueError("an agency is both served here and listed in [[known_agencies]]")
    check_ranges(
        [*settings.routes, *settings.bridges],
        [str(code) for code in served] + [str(a.code) for a in settings.known_agencies],
    )
    ranges: list[Ranged] = [*settings.routes, *settings.bridges]
    for rule in settings.bus_senders:
        # Served here, the sender is this daemon's account; across a bridge, the far bus's.
        inside = [str(code) for code in served if rule.takes(code)]
        inside += [
            f"{type(r).__name__.lower()} {r.name}"
            for r in ranges
            if any(overlap(mine, theirs) for mine in rule.codes for theirs in r.codes)
        ]
        if inside:
            raise ValueError(
                f"[[bus_senders]] {', '.join(rule.codes)} holds what is not another daemon's "
                f"on this bus: {', '.join(inside)}"
            )


def _bridges(settings: Settings) -> None:
    if settings.bridges and settings.bus.url is None:
        raise ValueError("bridges join RabbitMQ buses: set [bus] url")
    users = [bridge.arrivals_user for bridge in settings.bridges]
    if len(set(users)) != len(users):
        raise ValueError("two bridges share an arrivals_user: it names which bus spoke")
    url = settings.bus.url.get_secret_value() if settings.bus.url else ""
    own = {unquote(urlsplit(url).username or "guest")}
    own |= {a.bus_user for a in settings.known_agencies if a.bus_user}
    own |= {rule.bus_user for rule in settings.bus_senders}
    if own & set(users):
        raise ValueError(
            "a bridge's arrivals_user is this daemon's account or a known agency's: "
            "it must be the far bus's shovel's alone"
        )


def _clients(settings: Settings) -> None:
    served = {a.code for a in settings.agencies}
    for client in settings.clients:
        foreign = [str(code) for code in client.agencies if code not in served]
        if foreign:
            raise ValueError(
                f"client {client.name} may only speak for agencies served here, "
                f"not {', '.join(foreign)}"
            )
    patterns = {pattern for route in settings.routes for pattern in route.codes}
    for client in settings.clients:
        strays = [pattern for pattern in client.ranges if pattern not in patterns]
        if strays:
            raise ValueError(
                f"client {client.name} speaks for ranges no route has: {', '.join(strays)}"
            )
    names = [c.name for c in settings.clients]
    if len(set(names)) != len(names):
        raise ValueError("two clients share a name")
    if any(c.token is None for c in settings.clients):
        raise ValueError("a client in the settings needs its token")
    tokens = [c.token.get_secret_value() for c in settings.clients if c.token is not None]
    if len(set(tokens)) != len(tokens):
        raise ValueError("two clients share a token")
