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


@pytest.mark.asyncio
async def test_a_node_that_takes_the_connection_but_never_answers_is_passed_over() -> None:
    # A frozen broker, or a dead one behind a NAT: TCP connects, AMQP never starts.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up on it
        writer.close()

    frozen = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = frozen.sockets[0].getsockname()[1]
    try:
        connection = await asyncio.wait_for(
            connect(
                f"amqp://guest:guest@127.0.0.1:{port}/",
                ["127.0.0.1:5672"],
                client_properties={},
                node_timeout_s=1,
            ),
            timeout=20,
        )
        assert connection.url.port == 5672
        await connection.close()
    finally:
        frozen.close()
        await frozen.wait_closed()


@pytest.mark.asyncio
async def test_every_node_is_tried_in_turn_until_one_answers() -> None:
    # Its node lost, then two dead nodes: round the list, back to the first once it is up
    # again (moving twice per failure once skipped a node for ever).
    proxy = BrokerProxy()
    await proxy.start()
    dead = [f"127.0.0.1:{_closed_port()}", f"127.0.0.1:{_closed_port()}"]
    url = proxy.url + "?reconnect_interval=0.2"
    connection = await connect(url, dead, client_properties={})
    tried: list[int | None] = []
    try:
        await proxy.cut()
        deadline = asyncio.get_running_loop().time() + 3
        while asyncio.get_running_loop().time() < deadline:
            tried.append(connection.url.port)
            await asyncio.sleep(0.05)
        await proxy.start()  # the first node is back
        deadline = asyncio.get_running_loop().time() + 30
        while not (connection.url.port == proxy.port and connection.connected.is_set()):
            assert asyncio.get_running_loop().time() < deadline, "the first node never tried"
            await asyncio.sleep(0.05)
    finally:
        await connection.close()
        await proxy.cut()
        await asyncio.sleep(0.2)  # the relay's own streams close
    assert {int(node.rsplit(":", 1)[1]) for node in dead} <= set(tried)
