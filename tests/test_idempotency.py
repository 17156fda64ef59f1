"""Idempotent submission (issue 21): a system that lost the answer to a submission sends it
again with the same ``Idempotency-Key``, and the packet is kept and delivered once; the first
answer comes back. Real daemons, real agency servers on loopback, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from lgsp_adapter.daemon.config import Settings
from tests.agency_server import AgencyServer, agency_server
from tests.exchange_stores import BACKENDS, fresh_schema
from tests.test_exchange_embedded import PROVINCE, TOKEN
from tests.test_exchange_rabbitmq import COMMUNE, daemon, letter_to

LETTER = letter_to(COMMUNE)


@asynccontextmanager
async def exchange(
    tmp_path: Path, database: str | None, window_h: float = 24, **http: float
) -> AsyncIterator[tuple[str, AgencyServer]]:
    """A daemon serving the province (pull) and a commune pushed to ``commune``; its URL.
    ``tmp_path`` holds its SQLite store (or, with ``database``, its key files)."""
    commune = AgencyServer()
    store = await store_of(tmp_path, database)
    async with agency_server(commune):
        settings = Settings.model_validate(
            {
                "http": {"port": 0, "idempotency_window_h": window_h, **http},
                "store": store,
                "delivery": {"quick_retries": 0, "retry_delays_s": [0.2]},
                "daemon": {"drain_s": 2},
                "agencies": [
                    {"code": PROVINCE, "name": "tỉnh", "endpoint": {"mode": "pull"}},
                    {"code": COMMUNE, "name": "xã", "endpoint": {"url": commune.url}},
                ],
                "clients": [{"name": "province", "token": TOKEN, "agencies": [PROVINCE]}],
            }
        )
        async with daemon(settings) as url:
            yield url, commune


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str | None:
    """None for SQLite; the test run's PostgreSQL database otherwise."""
    return None if request.param == "sqlite" else request.getfixturevalue("postgres_database")


async def store_of(tmp_path: Path, database: str | None) -> dict[str, Any]:
    if database is None:
        return {"path": str(tmp_path / "store.sqlite3")}
    # The path still places the daemon's key files (in the test's folder, not ./var).
    return {"url": await fresh_schema(database), "path": str(tmp_path / "store.sqlite3")}


async def post(url: str, body: bytes, key: str | None) -> tuple[int, dict[str, Any], Any]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/xml"}
    if key is not None:
        headers["Idempotency-Key"] = key
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/v1/packets", data=body, headers=headers) as response,
    ):
        return response.status, await response.json(), response.headers


async def cut_after_sending(url: str, body: bytes, key: str, token: str = TOKEN) -> None:
    """The request sent whole, the connection closed before any answer: as a system whose
    connection broke between the daemon's COMMIT and its 202."""
    address = URL(url)
    _, writer = await asyncio.open_connection(address.host, address.port)
    head = (
        f"POST /v1/packets HTTP/1.1\r\nHost: {address.host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/xml\r\nIdempotency-Key: {key}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    writer.write(head + body)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def until_delivered(commune: AgencyServer, count: int = 1) -> list[str]:
    for _ in range(200):
        if len(commune.delivered()) >= count:
            return commune.delivered()
        await asyncio.sleep(0.05)
    raise AssertionError(f"not delivered: {commune.delivered()}")


@pytest.mark.asyncio
async def test_an_answer_lost_after_the_commit_is_given_again_and_nothing_twice(
    tmp_path: Path, backend: str | None
) -> None:
    key = str(uuid.uuid4())
    async with exchange(tmp_path, backend) as (url, commune):
        await cut_after_sending(url, LETTER, key)
        (delivered,) = await until_delivered(commune)  # kept, though nobody heard the 202
        status, answer, headers = await post(url, LETTER, key)
        assert status == 202, answer
        assert answer["packet_id"] == delivered
        assert headers["Idempotent-Replayed"] == "true"
        assert [d["state"] for d in answer["deliveries"]] == ["accepted"]  # the first answer
        again = await post(url, LETTER, key)
        assert (again[0], again[1]) == (202, answer)
        await asyncio.sleep(0.5)
    assert commune.delivered() == [delivered]


@pytest.mark.asyncio
async def test_a_key_names_one_packet_and_only_for_its_window(
    tmp_path: Path, backend: str | None
) -> None:
    key = str(uuid.uuid4())
    async with exchange(tmp_path, backend, window_h=0.5 / 3600) as (url, commune):
        status, first, headers = await post(url, LETTER, key)
        assert status == 202, first
        assert "Idempotent-Replayed" not in headers
        other = letter_to(COMMUNE).replace(b"1234", b"5678")
        status, answer, _ = await post(url, other, key)
        assert (status, answer["error"]["code"]) == (422, "packet.idempotency_conflict")
        assert answer["error"]["details"] == {"packet_id": first["packet_id"]}
        await asyncio.sleep(0.8)
        status, answer, _ = await post(url, LETTER, key)
        assert (status, answer["error"]["code"]) == (422, "packet.idempotency_expired")
        status, answer, _ = await post(url, LETTER, "a key with spaces")
        assert (status, answer["error"]["code"]) == (400, "packet.idempotency_key_invalid")
        await until_delivered(commune, 1)
    assert commune.delivered() == [first["packet_id"]]
    assert json.dumps(first)  # the answer is JSON a system can keep


@pytest.mark.asyncio
async def test_without_a_key_a_document_is_known_by_its_sender_and_document_id(
    tmp_path: Path, backend: str | None
) -> None:
    """The same document again is the same packet; other content under the id of a new
    document is refused; an update shares the id of what it updates and is its own packet."""
    update = LETTER.replace(
        b"<edXML:BussinessDocType>0</edXML:BussinessDocType>",
        b"<edXML:BussinessDocType>2</edXML:BussinessDocType>",
    )
    assert update != LETTER
    async with exchange(tmp_path, backend) as (url, commune):
        status, first, _ = await post(url, LETTER, None)
        assert status == 202, first
        status, again, headers = await post(url, LETTER, None)
        assert (status, again["packet_id"]) == (202, first["packet_id"])
        assert headers["Idempotent-Replayed"] == "true"
        altered = LETTER.replace("Công văn".encode(), "Thư".encode(), 1)
        assert altered != LETTER
        status, answer, _ = await post(url, altered, None)
        assert (status, answer["error"]["code"]) == (409, "packet.duplicate_document"), answer
        assert answer["error"]["details"]["packet_id"] == first["packet_id"]
        status, updated, _ = await post(url, update, None)
        assert status == 202, updated
        assert updated["packet_id"] != first["packet_id"]
        status, repeated, _ = await post(url, update, None)
        assert repeated["packet_id"] == updated["packet_id"]
        await until_delivered(commune, 2)
        await asyncio.sleep(0.3)
    assert sorted(commune.delivered()) == sorted([first["packet_id"], updated["packet_id"]])
