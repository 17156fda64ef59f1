"""Moving between the nodes of a cluster, on the one broker of this machine: a relay in front of
it plays the node that dies (tests/test_cluster.py does it on three real nodes)."""

from __future__ import annotations

import asyncio
import socket
import uuid

import aio_pika
import pytest

from lgsp_adapter.bus.failover import connect, node_urls
from tests.tcp_proxy import BrokerProxy


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_other_nodes_share_the_account_and_vhost() -> None:
    urls = node_urls("amqp://lgsp:s%40cret@rabbit-1:5672/tinh", ["rabbit-2:5673", "10.0.0.3:5672"])
    assert [str(u) for u in urls] == [
        "amqp://lgsp:s%40cret@rabbit-1:5672/tinh",
        "amqp://lgsp:s%40cret@rabbit-2:5673/tinh",
        "amqp://lgsp:s%40cret@10.0.0.3:5672/tinh",
    ]


@pytest.mark.asyncio
async def test_a_daemon_starts_while_its_first_node_is_down() -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{_closed_port()}/"
    connection = await connect(dead, ["127.0.0.1:5672"], client_properties={})
    try:
        assert connection.url.port == 5672
    finally:
        await connection.close()


@pytest.mark.asyncio
async def test_a_lost_node_is_left_for_the_next_and_channels_come_back() -> None:
    proxy = BrokerProxy()
    await proxy.start()
    connection = await connect(proxy.url, ["127.0.0.1:5672"], client_properties={})
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"lgsp.test.failover.{uuid.uuid4().hex[:12]}")
        await proxy.cut()  # the node dies, and stays dead
        deadline = asyncio.get_running_loop().time() + 30
        while not (connection.url.port == 5672 and connection.connected.is_set()):
            assert asyncio.get_running_loop().time() < deadline, "still on the dead node"
            await asyncio.sleep(0.1)
        # The robust channel is restored on the other node and works.
        await asyncio.sleep(0.5)
        await channel.default_exchange.publish(
            aio_pika.Message(b"after the move"), routing_key=queue.name
        )
        message = await queue.get(timeout=10)
        assert message.body == b"after the move"
        await message.ack()
        await queue.delete()
    finally:
        await connection.close()
        await proxy.cut()
