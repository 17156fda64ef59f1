"""scripts/inter-level.sh, the walkthrough of docs/inter-level.md, run as an operator would on
the three brokers of scripts/rabbitmq-buses.sh: it must end with the document delivered across
three buses, its journey proved across two logs, and the province's log witnessed."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import aiohttp
import pytest

from lgsp_adapter.bus.shovels import Management
from lgsp_adapter.bus.topology import Topology
from tests.test_walkthrough import PROJECT, free_port


@pytest.mark.buses
@pytest.mark.asyncio
@pytest.mark.timeout(300)
async def test_the_inter_level_walkthrough_runs_to_the_end(tmp_path: Path) -> None:
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    environment = {
        **os.environ,
        "EXCHANGE": exchange,
        "PROVINCE_PORT": str(free_port()),
        "HUB_PORT": str(free_port()),
        "MINISTRY_PORT": str(free_port()),
        "SYSTEM_PORT": str(free_port()),
        "WORK": str(tmp_path / "work"),
    }
    try:
        process = await asyncio.create_subprocess_exec(
            str(PROJECT / "scripts" / "inter-level.sh"),
            env=environment,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), timeout=240)
    finally:
        async with aiohttp.ClientSession() as session:
            for bus in (1, 2, 3):  # the shovels go with the walkthrough's exchange
                management = Management(f"http://guest:guest@127.0.0.1:1569{bus}/", session)
                await management.declare(Topology(exchange), [])
    text = out.decode()
    assert process.returncode == 0, text
    assert "to         000.00.00.G12: delivered" in text
    assert "arrived        000.00.00.H56 -> 000.00.00.G12" in text
    assert f"through {exchange}.bridge.national on lgsp-b1@" in text
    assert "journey verifies: packet " in text
    assert "hop: log 1 forwarded it at " in text
    assert "vouches up to" in text
    assert "Done: a document crossed three buses" in text
    assert not (tmp_path / "work").exists()
