"""A broker where daemons may configure nothing: an administrator declares the topology with
``lgsp-adapter declare``; a daemon with bus.declare = false only checks it is there."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import pytest

from lgsp_adapter.bus.topology import Permissions, Topology, permissions
from lgsp_adapter.daemon.config import load_settings
from lgsp_adapter.daemon.run import run_daemon
from lgsp_adapter.errors import FatalError
from tests.agency_server import AgencyServer, agency_server, arrival
from tests.cli_process import lgsp_adapter
from tests.test_exchange_embedded import submit
from tests.test_exchange_rabbitmq import (
    BROKER,
    COMMUNE,
    PROVINCE,
    broker_account,
    daemon,
    letter_to,
    remove_topology,
)
from tests.test_registry_web import PROVINCE_TOKEN

DELAYS = [0.5, 2.0]


@pytest.mark.asyncio
async def test_an_administrator_declares_and_a_daemon_that_may_not_still_works(
    tmp_path: Path,
) -> None:
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    topology = Topology(exchange)
    codes = "|".join(re.escape(code) for code in (PROVINCE, COMMUNE))
    least = permissions(topology, codes)
    allowed = Permissions(configure="^$", write=least.write, read=least.read)
    commune = AgencyServer()
    try:
        async with (
            agency_server(commune),
            broker_account(f"lgsp-nc-{uuid.uuid4().hex[:8]}", allowed) as url,
        ):
            path = tmp_path / "lgsp.toml"
            path.write_text(
                f"""
[http]
port = 0
[bus]
url = "{url}"
exchange = "{exchange}"
declare = false
[store]
path = "{tmp_path / "store.sqlite3"}"
[delivery]
retry_delays_s = {DELAYS}
[[agencies]]
code = "{PROVINCE}"
name = "tỉnh"
[agencies.endpoint]
mode = "pull"
[[agencies]]
code = "{COMMUNE}"
name = "xã"
[agencies.endpoint]
url = "{commune.url}"
[[clients]]
name = "province"
token = "{PROVINCE_TOKEN}"
agencies = ["{PROVINCE}"]
"""
            )
            settings = load_settings(path)
            with pytest.raises(FatalError) as refused:
                await run_daemon(settings, asyncio.Event())
            assert refused.value.code == "bus.topology_missing"
            assert topology.agency_queue(COMMUNE) in refused.value.details["missing"]

            status, out, err = await lgsp_adapter("declare", "--config", str(path), "--url", BROKER)
            assert status == 0, err
            assert topology.retry_queue(COMMUNE, 2.0) in out.split()
            status, out, _ = await lgsp_adapter(
                "broker-permissions", "someone", "--config", str(path)
            )
            assert "'^$'" in out  # it configures nothing

            async with daemon(settings) as api:
                packet_id = await submit(api, letter_to(COMMUNE))
                await arrival(commune, packet_id)
    finally:
        await remove_topology(exchange, [PROVINCE, COMMUNE], [*DELAYS, 1.0])
    assert commune.delivered() == [packet_id]
