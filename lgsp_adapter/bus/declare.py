"""Declaring the exchange's shape on RabbitMQ: by each daemon as it starts (the default), or
beforehand by an administrator with ``lgsp-adapter declare`` where daemons' broker accounts
may configure nothing (``bus.declare = false``): such a daemon only checks that what it needs
is there, and says what is missing.
"""

from __future__ import annotations

import contextlib

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aio_pika.exceptions import ChannelClosed

from lgsp_adapter.bus.topology import NOT_SERVED_WAIT_S, Topology


async def exchanges(channel: AbstractChannel, topology: Topology) -> AbstractExchange:
    """The topic exchange, the broker's dead-letter exchange, and the arrivals exchange other
    buses' shovels publish to with its strays (exchange and queue); returns the first."""
    exchange = await channel.declare_exchange(
        topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    await channel.declare_exchange(
        topology.dead_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    strays = await channel.declare_exchange(
        topology.strays, aio_pika.ExchangeType.FANOUT, durable=True
    )
    await channel.declare_exchange(
        topology.arrivals_exchange,
        aio_pika.ExchangeType.TOPIC,
        durable=True,
        arguments=topology.arrivals_arguments(),
    )
    queue = await channel.declare_queue(
        topology.strays_queue, durable=True, arguments=topology.dead_arguments()
    )
    await queue.bind(strays, "")
    return exchange


async def agency_queues(
    channel: AbstractChannel, topology: Topology, code: str, patterns: list[str] | None = None
) -> None:
    """One agency's queue and dead-letter queue, bound to its code; or a route's, named by
    its key and bound to each of its ``patterns``."""
    queue = await channel.declare_queue(
        topology.agency_queue(code), durable=True, arguments=topology.agency_arguments()
    )
    dead = await channel.declare_queue(
        topology.dead_queue(code), durable=True, arguments=topology.dead_arguments()
    )
    for pattern in patterns or [code]:
        await queue.bind(topology.exchange, topology.binding(pattern))
        await queue.bind(topology.arrivals_exchange, topology.binding(pattern))
        await dead.bind(topology.dead_exchange, topology.binding(pattern))


async def unbind(
    connection: AbstractConnection, topology: Topology, key: str, patterns: list[str]
) -> None:
    """Unbind an agency's or a route's queues from ``patterns`` they no longer take (a route
    narrowed or removed, an agency's code taken into a route), on a channel of its own: a
    queue an operator deleted closes that channel, not the daemon's."""
    channel = await connection.channel(publisher_confirms=False)
    try:
        queue = await channel.get_queue(topology.agency_queue(key), ensure=False)
        dead = await channel.get_queue(topology.dead_queue(key), ensure=False)
        for pattern in patterns:
            await queue.unbind(topology.exchange, topology.binding(pattern))
            await queue.unbind(topology.arrivals_exchange, topology.binding(pattern))
            await dead.unbind(topology.dead_exchange, topology.binding(pattern))
    except ChannelClosed:
        pass  # the queues are gone: nothing is bound to them
    finally:
        with contextlib.suppress(Exception):
            await channel.close()


async def retry_queue(
    channel: AbstractChannel, topology: Topology, code: str, delay_s: float
) -> None:
    """Where a packet for ``code`` waits ``delay_s`` before its next attempt."""
    await channel.declare_queue(
        topology.retry_queue(code, delay_s),
        durable=True,
        arguments=topology.retry_arguments(code, delay_s),
    )


def queue_names(topology: Topology, code: str, delays: list[float]) -> list[str]:
    """Every queue a daemon serving ``code`` uses: its own, its dead letters, one per retry
    delay, and the short wait of a delivery for an agency not served at that moment."""
    waits = sorted({*delays, NOT_SERVED_WAIT_S})
    return [
        topology.agency_queue(code),
        topology.dead_queue(code),
        *(topology.retry_queue(code, delay) for delay in waits),
    ]


async def everything(
    connection: AbstractConnection,
    topology: Topology,
    agencies: dict[str, list[float]],
    patterns: dict[str, list[str]] | None = None,
) -> list[str]:
    """Declare the whole shape for ``agencies`` (code or route key -> retry delays, a route's
    key bound to its ``patterns``); the names declared."""
    channel = await connection.channel()
    try:
        await exchanges(channel, topology)
        declared = [
            topology.exchange,
            topology.dead_exchange,
            topology.arrivals_exchange,
            topology.strays,
            topology.strays_queue,
        ]
        for code, delays in sorted(agencies.items()):
            await agency_queues(channel, topology, code, (patterns or {}).get(code))
            for delay in sorted({*delays, NOT_SERVED_WAIT_S}):
                await retry_queue(channel, topology, code, delay)
            declared += queue_names(topology, code, delays)
        return declared
    finally:
        await channel.close()


async def depths(
    connection: AbstractConnection, queues: list[str], exchanges: tuple[str, ...] = ()
) -> dict[str, int | None]:
    """Messages waiting in each of ``queues`` (None: not on the broker), and for each of
    ``exchanges`` 0 or None, asked passively on a channel of its own: a missing name closes the
    channel that asked, not the daemon's."""
    found: dict[str, int | None] = {}
    channel = await connection.channel(publisher_confirms=False)
    try:
        for name in [*exchanges, *queues]:
            try:
                if name in exchanges:
                    await channel.get_exchange(name, ensure=True)
                    found[name] = 0
                else:
                    queue = await channel.declare_queue(name, passive=True)
                    found[name] = int(queue.declaration_result.message_count or 0)
            except ChannelClosed:
                found[name] = None
                # The broker closed it; closing it here too keeps aio-pika from reopening
                # it (a channel leaked at every check otherwise).
                with contextlib.suppress(Exception):
                    await channel.close()
                channel = await connection.channel(publisher_confirms=False)
    finally:
        with contextlib.suppress(Exception):
            await channel.close()
    return found


async def missing(
    connection: AbstractConnection, topology: Topology, agencies: dict[str, list[float]]
) -> list[str]:
    """What is not on the broker of what ``agencies`` need."""
    queues = [n for code, d in sorted(agencies.items()) for n in queue_names(topology, code, d)]
    names = (topology.exchange, topology.dead_exchange, topology.arrivals_exchange)
    found = await depths(connection, [*queues, topology.strays_queue], (*names, topology.strays))
    return [name for name, count in found.items() if count is None]
