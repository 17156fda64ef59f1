"""A stream of 1,000 packets through a three-node RabbitMQ cluster with quorum queues, one node
killed mid-stream: the node both daemons are connected to, which also leads every queue they
declared. The daemons move to another node, the queues elect new leaders, and the commune's
system gets each packet once.

Needs the cluster of scripts/rabbitmq-cluster.sh: ``make test-cluster`` starts it, runs the
tests marked ``cluster`` and stops it (``make test`` leaves them out; CI runs both)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.faults import Broker, exchange, send, settle, stream_with

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "rabbitmq-cluster.sh"
CLUSTER = Broker(
    url="amqp://guest:guest@127.0.0.1:5681/", nodes=("127.0.0.1:5682", "127.0.0.1:5683")
)
PACKETS = 1000


async def cluster(*args: str) -> None:
    """scripts/rabbitmq-cluster.sh with ``args``; the test fails if it does."""
    run = await asyncio.create_subprocess_exec(
        str(SCRIPT), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(run.communicate(), timeout=240)
    assert run.returncode == 0, output.decode(errors="replace")


@pytest.mark.cluster
@pytest.mark.asyncio
@pytest.mark.timeout(900)  # a stream of 1,000 packets through a node's death and return
async def test_one_node_of_three_killed_mid_stream(tmp_path: Path) -> None:
    killed_at = 0.0

    async def kill_first_node(_: int) -> None:
        nonlocal killed_at
        await cluster("kill", "1")
        killed_at = time.monotonic()
        # The sending daemon keeps accepting while its node is gone and it moves.
        late.append(asyncio.create_task(send(pair, 200)))
        await asyncio.sleep(10)
        await cluster("revive", "1")  # it rejoins while the stream goes on

    late: list[asyncio.Task[list[str]]] = []
    async with exchange(tmp_path, broker=CLUSTER) as pair:
        accepted, _ = await stream_with(pair, PACKETS - 200, [0.4], kill_first_node)
        accepted += await late[0]
        outcome = await settle(
            "one node of a 3-node cluster SIGKILLed (quorum queues)", pair, accepted, killed_at
        )
    assert (outcome.sent, outcome.lost, outcome.duplicated) == (PACKETS, 0, 0)
