"""A robust connection to a RabbitMQ cluster: when the node it is connected to is lost, it
reconnects to the next one, and keeps going round until one answers.

aio-pika's robust connection restores channels, consumers and topology after a reconnect,
but always to the one URL it was given; a cluster's point is that another node can take over.
Clients of RabbitMQ are told to know several nodes (or sit behind a load balancer); this is the
first, so that a province needs no load balancer in front of a three-node cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aio_pika import RobustConnection
from yarl import URL

log = logging.getLogger(__name__)


def node_urls(url: str, nodes: list[str]) -> list[URL]:
    """The connection URL, then the same account and vhost on each other ``host:port``."""
    first = URL(url)
    others = []
    for node in nodes:
        host, _, port = node.rpartition(":")
        others.append(first.with_host(host).with_port(int(port)))
    return [first, *others]


class FailoverConnection(RobustConnection):
    """Moves to the next node each time the connection is lost, and again after each
    reconnect interval spent without one."""

    def __init__(self, url: URL, *, nodes: list[URL] | None = None, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._nodes = nodes or [URL(url)]
        self._current = 0
        self._moving: asyncio.Task[None] | None = None

    def _advance(self) -> None:
        self._current = (self._current + 1) % len(self._nodes)
        self.url = self._nodes[self._current]
        log.warning("the bus connection is lost; trying node %s", self.url.host_port_subcomponent)

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        if len(self._nodes) > 1 and not self._close_called:
            self._advance()
            if self._moving is None or self._moving.done():
                self._moving = asyncio.create_task(self._move_until_connected())
        await super()._on_connection_close(closing)

    async def _move_until_connected(self) -> None:
        # Each reconnect attempt reads self.url; a node that refuses is left for the next.
        while not self._close_called:
            try:
                await asyncio.wait_for(self.connected.wait(), self.reconnect_interval * 2)
                return
            except TimeoutError:
                self._advance()

    async def close(self, exc: Any = asyncio.CancelledError) -> None:
        """Close, and stop moving between nodes."""
        if self._moving is not None:
            self._moving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._moving
        await super().close(exc)


async def connect(
    url: str, nodes: list[str], *, client_properties: dict[str, Any]
) -> FailoverConnection:
    """A connection to the first node that answers, starting with ``url``'s: a daemon starts
    while one node of its cluster is down."""
    urls = node_urls(url, nodes)
    failure: BaseException | None = None
    for start in range(len(urls)):
        order = urls[start:] + urls[:start]
        connection = FailoverConnection(order[0], nodes=order, client_properties=client_properties)
        try:
            await connection.connect()
        except Exception as exc:  # the next node may answer
            failure = exc
            await connection.close()
            continue
        return connection
    assert failure is not None  # noqa: S101  # urls is never empty
    raise failure
