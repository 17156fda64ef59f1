"""The axis connector across processes: our facade plays the national axis in one process, a
provincial daemon reaches the Government Office through it from another, and the link between
them is cut mid-stream both ways. Nothing may be lost, and no agency system may get a document
twice."""

from __future__ import annotations

import asyncio
import base64
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from lgsp_adapter.cli.demo_packets import COMMUNES, DEPARTMENT, accepted_status, document
from lgsp_adapter.daemon.config import Settings
from tests.agency_server import AgencyServer, agency_server
from tests.axis_sdk import SdkClient
from tests.tcp_proxy import BrokerProxy
from tests.test_daemon_process import log_tail, start
from tests.test_exchange_rabbitmq import daemon

PROVINCE, GOVERNMENT_OFFICE = "000.00.00.H56", "000.00.00.G22"
INTEGRATOR = "integrator-of-the-axis-0123456789"
PROVINCE_TOKEN = "province-office-token-0123456789"
LINK_SYSTEM, LINK_SECRET = "lgsp.h56", "the-province-lgsp-secret-on-the-axis"
OFFICE_SYSTEM, OFFICE_SECRET = "vpcp.g22", "the-government-office-qlvb-secret"
EACH_WAY = 100


def upstream_document(number: int) -> bytes:
    """The province's letter to the Government Office."""
    return document((DEPARTMENT,), str(number)).replace(
        DEPARTMENT.encode(), GOVERNMENT_OFFICE.encode()
    )


def downstream_document(number: int) -> bytes:
    """The Government Office's letter to the province."""
    letter = document((DEPARTMENT,), str(number))
    letter = letter.replace(PROVINCE.encode(), GOVERNMENT_OFFICE.encode())
    return letter.replace(DEPARTMENT.encode(), PROVINCE.encode())


def axis_config(tmp_path: Path) -> Path:
    """The "national axis": where the Government Office's system and the province's link pull."""
    path = tmp_path / "axis" / "lgsp.toml"
    path.parent.mkdir()
    path.write_text(
        f"""
[http]
port = 0
requests_per_second = 1000
burst = 1000
[store]
path = "{path.parent / "store.sqlite3"}"
[[agencies]]
code = "{GOVERNMENT_OFFICE}"
name = "Văn phòng Chính phủ"
endpoint = {{ mode = "pull" }}
[[agencies]]
code = "{PROVINCE}"
name = "UBND tỉnh Thanh Hóa"
endpoint = {{ mode = "pull" }}
[[clients]]
name = "integrator"
token = "{INTEGRATOR}"
role = "integrator"
[[clients]]
name = "auditor"
token = "{INTEGRATOR}-audit"
role = "auditor"
""",
        encoding="utf-8",
    )
    return path


def province_settings(tmp_path: Path, inbox: str, axis_url: str) -> Settings:
    return Settings.model_validate(
        {
            "http": {"port": 0},
            "store": {"path": str(tmp_path / "province" / "store.sqlite3")},
            "delivery": {"quick_retries": 0, "retry_delays_s": [0.3] * 200},
            "daemon": {"drain_s": 5},
            "axis": {"poll_s": 0.2},
            "agencies": [
                {"code": PROVINCE, "name": "UBND tỉnh", "endpoint": {"url": inbox}},
                {
                    "code": GOVERNMENT_OFFICE,
                    "name": "Văn phòng Chính phủ",
                    "endpoint": {
                        "mode": "axis",
                        "url": axis_url,
                        "timeout_s": 5,
                        "auth": {"kind": "axis", "system_id": LINK_SYSTEM, "secret": LINK_SECRET},
                    },
                },
            ],
            "clients": [{"name": "province", "token": PROVINCE_TOKEN, "agencies": [PROVINCE]}],
        }
    )


@asynccontextmanager
async def the_axis(tmp_path: Path) -> AsyncIterator[str]:
    """The axis in a process of its own, with the two systems registered."""
    config = axis_config(tmp_path)
    process, url = await start(config)
    try:
        async with aiohttp.ClientSession() as session:
            for system, secret, code in (
                (LINK_SYSTEM, LINK_SECRET, PROVINCE),
                (OFFICE_SYSTEM, OFFICE_SECRET, GOVERNMENT_OFFICE),
            ):
                answer = await session.post(
                    f"{url}/v1/axis-systems",
                    json={"system_id": system, "agencies": [code], "secret": secret},
                    headers={"Authorization": f"Bearer {INTEGRATOR}"},
                )
                assert answer.status == 201, await answer.text()
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=20)


async def submit_upstream(session: aiohttp.ClientSession, url: str, letter: bytes) -> str:
    async with session.post(
        f"{url}/v1/packets",
        data=letter,
        headers={"Authorization": f"Bearer {PROVINCE_TOKEN}", "Content-Type": "application/xml"},
    ) as answer:
        assert answer.status == 202, await answer.text()
        return str((await answer.json())["packet_id"])


async def how_it_went(
    session: aiohttp.ClientSession, url: str, packet_id: str
) -> list[dict[str, object]]:
    async with session.get(
        f"{url}/v1/packets/{packet_id}", headers={"Authorization": f"Bearer {PROVINCE_TOKEN}"}
    ) as answer:
        history: list[dict[str, object]] = (await answer.json())["history"]
        return history


async def office_takes_in(office: SdkClient, taken: Counter[bytes]) -> None:
    """One round of the Government Office's system: list, fetch each, say done."""
    for item in (await office.received()).json()["data"]:
        fetched = (await office.get_edoc(item["docId"])).json()
        taken[base64.b64decode(fetched["data"])] += 1
        assert (await office.update_status(item["docId"], "done")).json()["status"] == "OK"


@pytest.mark.asyncio
async def test_a_link_cut_mid_stream_loses_and_doubles_nothing_either_way(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        axis = await stack.enter_async_context(the_axis(tmp_path))
        link = BrokerProxy(target_port=int(axis.rsplit(":", 1)[1]))
        await link.start()
        stack.push_async_callback(link.cut)  # closes it, and what still goes through it
        province_system = await stack.enter_async_context(agency_server(AgencyServer()))
        settings = province_settings(
            tmp_path, province_system.url, f"http://127.0.0.1:{link.port}/axis"
        )
        province = await stack.enter_async_context(daemon(settings))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        office = SdkClient(f"{axis}/axis", OFFICE_SYSTEM, OFFICE_SECRET, session)
        downstream = [downstream_document(2000 + i) for i in range(EACH_WAY)]
        upstream = [upstream_document(1000 + i) for i in range(EACH_WAY)]
        taken: Counter[bytes] = Counter()
        headers = {"from": GOVERNMENT_OFFICE, "to": PROVINCE, "messagetype": "edoc"}
        submitted = []
        for i in range(EACH_WAY):
            submitted.append(await submit_upstream(session, province, upstream[i]))
            sent = (await office.send_edoc(headers, downstream[i])).json()
            assert sent["status"] == "OK", sent
            if i == EACH_WAY // 3:
                await link.cut()  # mid-stream, both ways at once
            if i == EACH_WAY // 3 + 20:
                await link.start()
            await office_takes_in(office, taken)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            await office_takes_in(office, taken)
            got = {r.body for r in province_system.received if 200 <= r.status < 300}
            if set(upstream) <= set(taken) and set(downstream) <= got:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1)  # time for a duplicate to show up
        await office_takes_in(office, taken)
        bodies = Counter(r.body for r in province_system.received if 200 <= r.status < 300)
        assert set(downstream) <= set(bodies), (
            f"lost on the way down: {len(set(downstream) - set(bodies))}\n"
            f"{log_tail(tmp_path / 'axis' / 'lgsp.toml')}"
        )
        lost = [n for n, body in enumerate(upstream) if body not in taken]
        assert not lost, (
            f"lost on the way up: {len(lost)}, {lost[:5]}: "
            f"{(await how_it_went(session, province, submitted[lost[0]]))[-3:]}"
        )
        assert max(bodies.values()) == 1, "the province's system got a document twice"
        assert max(taken.values()) == 1, "the Government Office's system got a document twice"
        assert not province_system.taken_more_than_once()
        await _statuses_go_both_ways(session, province, office, province_system)
        # The cut was felt: sends to the axis failed and were retried.
        histories = [await how_it_went(session, province, p) for p in submitted]
        assert sum(e["event"] == "retried" for h in histories for e in h) > 0


async def _statuses_go_both_ways(
    session: aiohttp.ClientSession, province: str, office: SdkClient, system: AgencyServer
) -> None:
    """Status packets answer documents across the two daemons, each side in its own protocol:
    the office's on the axis, the province's system's on /v1."""
    commune = COMMUNES[0].encode()
    from_office = accepted_status(COMMUNES[0]).replace(commune, GOVERNMENT_OFFICE.encode())
    answer = (await office.send_edoc({"messagetype": "status"}, from_office)).json()
    assert answer["status"] == "OK", answer
    to_office = accepted_status(COMMUNES[0]).replace(PROVINCE.encode(), GOVERNMENT_OFFICE.encode())
    to_office = to_office.replace(commune, PROVINCE.encode())
    await submit_upstream(session, province, to_office)
    deadline = time.monotonic() + 30
    statuses: list[bytes] = []
    while time.monotonic() < deadline:
        for item in (await office.received("status")).json()["data"]:
            fetched = (await office.get_edoc(item["docId"])).json()
            statuses.append(base64.b64decode(fetched["data"]))
            await office.update_status(item["docId"], "done")
        kinds = [r.headers.get("X-LGSP-Kind") for r in system.received if r.body == from_office]
        if statuses and kinds:
            break
        await asyncio.sleep(0.2)
    assert statuses == [to_office], "the province's status did not reach the office"
    assert kinds == ["status"], "the office's status did not reach the province's system"
