"""The corpus of hostile input under tests/data/hostile, thrown at every door that takes a body.

Each file is named ``<the code it must get>__<what it is>``. At the packet door it must get
exactly that code, be audited as rejected, and leave no packet; at the registry and the inbox
it must get their own 4xx. No door may answer 5xx.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import uuid
from pathlib import Path

import aio_pika
import pytest

from lgsp_adapter.daemon.config import Settings
from tests.agency_server import AgencyServer, agency_server
from tests.conftest import DATA
from tests.test_exchange_rabbitmq import (
    COMMUNE,
    daemon,
    letter_to,
    publish_raw,
    remove_topology,
    settings,
)
from tests.test_hostile_http import raw
from tests.test_registry_web import INTEGRATOR, PROVINCE, PROVINCE_TOKEN

CORPUS = sorted((DATA / "hostile").iterdir())
MEDIA = {".xml": "application/xml", ".json": "application/json", ".txt": "text/plain"}


def post(path: str, token: str, media: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {media}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


@pytest.mark.asyncio
async def test_every_hostile_file_is_refused_precisely_at_every_door(tmp_path: Path) -> None:
    assert len(CORPUS) >= 10
    config = Settings.model_validate(
        {
            "http": {"port": 0},
            "store": {"path": str(tmp_path / "store.sqlite3")},
            "agencies": [
                {"code": PROVINCE, "name": "tỉnh", "endpoint": {"mode": "pull"}},
            ],
            "clients": [
                {"name": "province", "token": PROVINCE_TOKEN, "agencies": [PROVINCE]},
                {"name": "integrator", "token": INTEGRATOR, "role": "integrator"},
            ],
        }
    )
    async with agency_server(AgencyServer()), daemon(config) as url:
        for path in CORPUS:
            expected = path.name.split("__")[0].encode()
            body, media = path.read_bytes(), MEDIA[path.suffix]
            answer = await raw(url, post("/v1/packets", PROVINCE_TOKEN, media, body))
            assert answer[9:10] == b"4", (path.name, answer[:200])
            assert b'"code": "' + expected + b'"' in answer, (path.name, answer[:300])
            for door, token, refusal in (
                ("/v1/endpoints", INTEGRATOR, b"registry.invalid"),
                (f"/v1/inbox/{'0' * 8}-0000-4000-8000-{'0' * 12}/ack", PROVINCE_TOKEN, b""),
            ):
                answer = await raw(url, post(door, token, media, body))
                assert answer[9:10] == b"4", (path.name, door, answer[:200])
                # Its own refusal, or over its (smaller) size limit first.
                assert refusal in answer or b"packet.too_large" in answer, (path.name, door)
    with sqlite3.connect(tmp_path / "store.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM packets").fetchone() == (0,)
        rejected = [
            row[0]
            for row in db.execute(
                "SELECT outcome FROM audit_entries WHERE event = 'rejected' ORDER BY idx"
            )
        ]
    assert rejected == [path.name.split("__")[0] for path in CORPUS]


@pytest.mark.asyncio
async def test_the_corpus_published_on_the_bus_is_refused_and_the_next_letter_arrives(
    tmp_path: Path,
) -> None:
    # The bus door: anyone with a broker account can publish to an agency's queue. Each file,
    # with a digest that matches it and honest-looking headers, is refused as bus.forged and
    # delivered to nobody; an honest letter after all of them still arrives.
    commune = AgencyServer()
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    try:
        async with agency_server(commune):
            config = settings(tmp_path, "b", exchange, {COMMUNE: commune.url}, [PROVINCE])
            async with daemon(config):
                for path in [*CORPUS, None]:
                    body = letter_to(COMMUNE) if path is None else path.read_bytes()
                    media = "application/xml" if path is None else MEDIA[path.suffix]
                    await publish_raw(
                        exchange,
                        f"edoc.{COMMUNE}",
                        aio_pika.Message(
                            body,
                            message_id=str(uuid.uuid4()),
                            type="edoc",
                            content_type=media,
                            headers={
                                "x-lgsp-sender": PROVINCE,
                                "x-lgsp-recipient": COMMUNE,
                                "x-lgsp-recipients": COMMUNE,
                                "x-lgsp-payload-sha256": hashlib.sha256(body).hexdigest(),
                            },
                        ),
                    )
                for _ in range(200):
                    if commune.received:
                        break
                    await asyncio.sleep(0.05)
                with sqlite3.connect(config.store.path) as db:
                    refused = db.execute(
                        "SELECT outcome FROM audit_entries WHERE event = 'rejected'"
                    ).fetchall()
    finally:
        await remove_topology(exchange, [COMMUNE])
    assert refused == [("bus.forged",)] * len(CORPUS)
    assert len(commune.received) == 1  # the honest letter, and only it
    assert b"<edXML:OrganId>" + COMMUNE.encode() in commune.received[0].body
