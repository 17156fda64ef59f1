"""Which bus a daemon runs on, opened from its settings: the embedded bus in its own store
(one daemon to a store), or RabbitMQ with the topology, accounts and watches the settings
name."""

from __future__ import annotations

from contextlib import AsyncExitStack

from lgsp_adapter.bus.embedded import EmbeddedBus
from lgsp_adapter.bus.rabbitmq import RabbitBus
from lgsp_adapter.bus.topology import Topology
from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.errors import ErrorCode, FatalError
from lgsp_adapter.exchange.relay import OnFinal
from lgsp_adapter.registry.directory import Directory
from lgsp_adapter.store import Store


async def opened_bus(
    stack: AsyncExitStack, settings: Settings, store: Store, directory: Directory, ended: OnFinal
) -> EmbeddedBus | RabbitBus:
    """The bus, entered into ``stack`` when it holds connections."""
    served = [str(code) for code in directory.served_codes]
    if settings.bus.url is None:
        if not await store.take_role("embedded-bus"):
            raise FatalError(
                ErrorCode.CONFIG_INVALID,
                "another daemon runs the embedded bus on this database; replicas sharing "
                "a store need RabbitMQ (bus.url)",
            )
        return EmbeddedBus(
            store=store,
            served=served,
            prefetch=settings.bus.prefetch,
            on_final=ended,
            routed=lambda code: directory.route_for(code) is not None,
        )
    return await stack.enter_async_context(
        RabbitBus(
            url=settings.bus.url.get_secret_value(),
            topology=Topology(settings.bus.exchange),
            store=store,
            served=served,
            prefetch=settings.bus.prefetch,
            retry_delays_s=settings.delivery.retry_delays_s,
            connection_name=f"lgsp-adapter {','.join(served)}",
            directory=directory,
            cluster_nodes=settings.bus.cluster_nodes,
            consumer_watch_s=settings.daemon.consumer_watch_s,
            declare_topology=settings.bus.declare,
            management_url=url.get_secret_value() if (url := settings.bus.management_url) else None,
        )
    )
