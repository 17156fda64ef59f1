"""Bindings a daemon no longer wants, taken off at start: a route's or a bridge's patterns
narrowed or dropped since the last start, and the code of an agency by name that a route's
range took in.

AMQP cannot list a queue's bindings, so the patterns each route's queues were bound to are kept
in the store, beside the registry that says which agencies were served by name. Left bound, the
topic exchange would keep copying packets into queues nobody consumes any more (growing until
the broker's disk alarm stops the whole bus), or into two. The queues themselves keep what they
hold, for an operator.
"""

from __future__ import annotations

import logging

from aio_pika.abc import AbstractConnection

from lgsp_adapter.bus import declare
from lgsp_adapter.bus.topology import Topology
from lgsp_adapter.registry.directory import Directory
from lgsp_adapter.store import Store

log = logging.getLogger(__name__)


async def unbind_stale(
    connection: AbstractConnection, topology: Topology, store: Store, directory: Directory
) -> None:
    """Unbind what the routes and bridges no longer take, then record what they are bound to
    now."""
    routes = {route.key: list(route.codes) for route in directory.routes}
    routes |= {bridge.key: list(bridge.codes) for bridge in directory.bridges}
    bound = await store.bindings()
    for key, patterns in bound.items():
        stale = [pattern for pattern in patterns if pattern not in routes.get(key, [])]
        if stale:
            log.warning("unbinding %s from %s: nothing takes them there now", key, stale)
            await declare.unbind(connection, topology, key, stale)
    codes = {record.code for record in await store.registry.endpoints()}
    codes |= set(dict(await store.registry.removed()))
    for code in sorted(codes):
        route = directory.range_of(code)
        if route is not None:
            log.warning("unbinding %s's own queues: route %s takes its code", code, route.name)
            await declare.unbind(connection, topology, code, [code])
    for key in sorted(set(bound) - set(routes)):
        await store.set_bindings(key, None)
    for key, patterns in routes.items():
        if bound.get(key) != patterns:
            await store.set_bindings(key, patterns)
