"""scripts/two-daemons.sh, the steps of docs/operations.md for two daemons on RabbitMQ and
PostgreSQL, run as a newcomer would: it must end with the letter delivered and both logs
verified."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from pathlib import Path

import pytest

from tests.conftest import POSTGRES
from tests.test_exchange_rabbitmq import BROKER, remove_topology

PROJECT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.asyncio
async def test_the_two_daemon_walkthrough_runs_to_the_end(tmp_path: Path) -> None:
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    environment = {
        **os.environ,
        "AMQP_URL": BROKER,
        "PG_URL": POSTGRES,
        "EXCHANGE": exchange,
        "PROVINCE_PORT": str(free_port()),
        "COMMUNE_PORT": str(free_port()),
        "SYSTEM_PORT": str(free_port()),
        "WORK": str(tmp_path / "work"),
    }
    try:
        process = await asyncio.create_subprocess_exec(
            str(PROJECT / "scripts" / "two-daemons.sh"),
            env=environment,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    finally:
        await remove_topology(exchange, ["000.00.00.H56", "000.21.00.H56"])
    text = out.decode()
    assert process.returncode == 0, text
    assert "to         000.21.00.H56: delivered" in text
    assert text.count("the log verifies") == 2
    assert "Done: a letter crossed" in text
    assert not (tmp_path / "work").exists()  # cleaned up, databases too
