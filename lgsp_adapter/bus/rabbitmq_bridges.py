"""A daemon's part in the bridges to other buses, on RabbitMQ: each bridge's queue (bound by its
patterns, on the main exchange and on the arrivals exchange, so that packets from this bus and
packets passing through it from another both go on), its shovel where the settings give the
management API, and a consumer of the strays (what another bus sent for a code nothing here
takes), which the pipeline answers with a refused receipt.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from lgsp_adapter.bus import declare
from lgsp_adapter.bus.contract import ArrivalHandler
from lgsp_adapter.bus.rabbitmq_consumers import patiently
from lgsp_adapter.bus.rabbitmq_messages import read_stray
from lgsp_adapter.bus.shovels import Management
from lgsp_adapter.bus.topology import Topology
from lgsp_adapter.registry.directory import Directory

log = logging.getLogger(__name__)


async def declare_bridges(
    channel: AbstractChannel,
    topology: Topology,
    directory: Directory,
    management_url: str | None,
    vhost: str,
) -> None:
    """Every bridge's queue and dead letters, bound by its patterns; and, given the management
    API, the shovels that carry them (those of removed bridges removed)."""
    for bridge in directory.bridges:
        await declare.agency_queues(channel, topology, bridge.key, list(bridge.codes))
    if management_url is not None:
        async with aiohttp.ClientSession() as session:
            await Management(management_url, session, vhost).declare(
                topology, list(directory.bridges)
            )


async def consume_strays(
    connection: AbstractRobustConnection,
    topology: Topology,
    handler: ArrivalHandler,
    stopping: asyncio.Event,
) -> None:
    """Hand each stray to ``handler`` until ``stopping``; acknowledged once it is recorded."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=20)
    queue = await channel.get_queue(topology.strays_queue, ensure=True)

    async def take(message: AbstractIncomingMessage) -> None:
        try:
            stray = read_stray(message)
        except (KeyError, ValueError) as exc:
            log.error("a stray without the lgsp headers (%s); dropped", exc)
            await message.reject(requeue=False)
            return
        # As any message: while the store is away it waits, not spent on the delivery limit.
        await patiently(f"stray {stray.packet_id}", message, lambda: handler.take_stray(stray))

    tag = await queue.consume(take)
    try:
        await stopping.wait()
    finally:
        try:
            await queue.cancel(tag)
            await channel.close()
        except Exception:  # the connection went first: nothing to cancel
            log.debug("strays consumer: the channel was already gone")
