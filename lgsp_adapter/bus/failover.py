"""A robust connection to a RabbitMQ cluster: when the node it is connected to is lost, it
reconnects to the next one, and keeps going round until one answers.

aio-pika's robust connection restores channels, consumers and topology after a reconnect,
but always to the one URL it was given; a cluster's point is that another node can take over.
Clients of RabbitMQ are told to know several nodes (or sit behind a load balancer); this is the
first, so that a province needs no load balancer in front of a three-node cluster.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aio_pika import RobustConnection
from yarl import URL

log = logging.getLogger(__name__)

NODE_TIMEOUT_S = 10.0  # per connection attempt to a cluster's node


def node_urls(url: str, nodes: list[str]) -> list[URL]:
    """The connection URL, then the same account, vhost and options on each other
    ``host:port`` (``[v6 address]:port`` too)."""
    first = URL(url)
    others = []
    for node in nodes:
        host, _, port = node.rpartition(":")
        others.append(first.with_host(host.strip("[]")).with_port(int(port)))
    return [first, *others]


class FailoverConnection(RobustConnection):
    """Moves to the next node each time the connection is lost or an attempt to make one
    fails (aio-pika reports both through ``_on_connection_close``), so that every node is
    tried in turn."""

    def __init__(self, url: URL, *, nodes: list[URL] | None = None, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._nodes = nodes or [URL(url)]
        self._current = 0

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        if len(self._nodes) > 1 and not self._close_called:
            self._current = (self._current + 1) % len(self._nodes)
            self.url = self._nodes[self._current]
            log.warning(
                "the bus connection is lost; next, node %s", self.url.host_port_subcomponent
            )
        await super()._on_connection_close(closing)


async def connect(
    url: str,
    nodes: list[str],
    *,
    client_properties: dict[str, Any],
    node_timeout_s: float = NODE_TIMEOUT_S,
) -> FailoverConnection:
    """A connection to the first node that answers, starting with ``url``'s: a daemon starts
    while one node of its cluster is down. With several nodes, each attempt has
    ``node_timeout_s`` (here and at every reconnect): a node that takes the TCP connection
    but never answers (frozen, or a dead one behind a NAT) must not hold the daemon."""
    urls = node_urls(url, nodes)
    timeout = node_timeout_s if len(urls) > 1 else None
    failure: BaseException | None = None
    for start in range(len(urls)):
        order = urls[start:] + urls[:start]
        connection = FailoverConnection(order[0], nodes=order, client_properties=client_properties)
        try:
            await connection.connect(timeout=timeout)
        except Exception as exc:  # the next node may answer
            failure = exc
            await connection.close()
            continue
        except BaseException:  # cancelled: leave nothing connecting behind
            await connection.close()
            raise
        return connection
    assert failure is not None  # noqa: S101  # urls is never empty
    raise failure
