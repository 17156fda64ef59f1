"""The HTTP API as agency systems use it: a real aiohttp server and client on loopback."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.exchange.intake import Intake
from lgsp_adapter.http.app import make_app
from lgsp_adapter.store.sqlite import SqliteStore
from tests.conftest import EXAMPLES
from tests.documents import numbered

PROVINCE_TOKEN = "province-office-token-0123456789"
COMMUNE_TOKEN = "quang-phu-commune-token-0123456789"
TRANSPORT_TOKEN = "transport-department-token-012345"


def settings(tmp_path: Path, max_bytes: int = 1_000_000) -> Settings:
    def served(code: str) -> dict[str, Any]:
        return {"code": code, "name": code, "endpoint": {"url": "http://127.0.0.1:9/inbox"}}

    return Settings.model_validate(
        {
            "limits": {"max_bytes": max_bytes},
            "store": {"path": str(tmp_path / "store.sqlite3")},
            "agencies": [served("000.00.00.H56"), served("000.21.00.H56"), served("000.00.12.H56")],
            "known_agencies": [{"code": c} for c in ("000.22.00.H56", "000.56.20.G12")],
            "clients": [
                {"name": "province", "token": PROVINCE_TOKEN, "agencies": ["000.00.00.H56"]},
                {"name": "quang-phu", "token": COMMUNE_TOKEN, "agencies": ["000.21.00.H56"]},
                {"name": "transport", "token": TRANSPORT_TOKEN, "agencies": ["000.00.12.H56"]},
            ],
        }
    )


@pytest_asyncio.fixture
async def api(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[TestClient[Any, Any]]:
    config = settings(tmp_path, getattr(request, "param", 1_000_000))
    async with await SqliteStore.open(config.store.path) as store:
        directory = config.directory()
        intake = Intake(store=store, directory=directory, limits=config.limits)
        app = make_app(
            store=store, directory=directory, intake=intake, max_bytes=config.limits.max_bytes
        )
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            yield client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post(
    api: TestClient[Any, Any], name: str, token: str, number: int | None = None, **headers: str
) -> ClientResponse:
    """Submit an example; with ``number``, as a document of its own (``tests.documents``)."""
    body = (EXAMPLES / name).read_bytes()
    if number is not None:
        body = numbered(body, number)
    content_type = "application/json" if name.endswith(".json") else "application/xml"
    return await api.post(
        "/v1/packets", data=body, headers={"Content-Type": content_type, **auth(token), **headers}
    )


async def error_code(response: ClientResponse, status: int) -> str:
    assert response.status == status, await response.text()
    body = await response.json()
    assert set(body["error"]) == {"code", "message", "details"}
    return str(body["error"]["code"])


def rejections(tmp_path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(tmp_path / "store.sqlite3") as db:
        rows = db.execute("SELECT event, outcome FROM audit_entries WHERE event = 'rejected'")
        return [(str(e), str(o)) for e, o in rows]


@pytest.mark.asyncio
async def test_a_document_is_accepted_once_durable_with_one_delivery_per_recipient(
    api: TestClient[Any, Any],
) -> None:
    response = await post(api, "edoc-new-thanh-hoa.edxml", PROVINCE_TOKEN)
    assert response.status == 202, await response.text()
    body = await response.json()
    assert response.headers["Location"] == f"/v1/packets/{body['packet_id']}"
    assert body["kind"] == "edoc"
    assert body["sender"] == "000.00.00.H56"
    assert body["deliveries"] == [
        {"recipient": r, "state": "accepted"}
        for r in ("000.00.12.H56", "000.21.00.H56", "000.22.00.H56")
    ]
    shown = await api.get(response.headers["Location"], headers=auth(PROVINCE_TOKEN))
    assert shown.status == 200
    state = await shown.json()
    assert [e["event"] for e in state["history"]] == ["received"]
    assert len(state["deliveries"]) == 3


@pytest.mark.asyncio
async def test_a_recipient_may_follow_a_packet_addressed_to_it(api: TestClient[Any, Any]) -> None:
    response = await post(api, "edoc-new-thanh-hoa.edxml", PROVINCE_TOKEN)
    location = response.headers["Location"]
    assert (await api.get(location, headers=auth(COMMUNE_TOKEN))).status == 200


@pytest.mark.asyncio
async def test_a_status_goes_to_the_agency_whose_document_it_is_about(
    api: TestClient[Any, Any],
) -> None:
    response = await post(api, "status-03-accepted.edxml", COMMUNE_TOKEN)
    assert response.status == 202, await response.text()
    assert (await response.json())["deliveries"] == [
        {"recipient": "000.00.00.H56", "state": "accepted"}
    ]


@pytest.mark.asyncio
async def test_a_tax_transport_packet_is_accepted(api: TestClient[Any, Any]) -> None:
    response = await post(api, "tax-transport-vehicle-badge.json", TRANSPORT_TOKEN)
    assert response.status == 202, await response.text()
    body = await response.json()
    assert body["kind"] == "tax-transport/vehicle-badge"
    assert body["document_id"] == "SXD-TH-2026-11-000382"


@pytest.mark.asyncio
async def test_a_client_cannot_send_as_another_agency(
    api: TestClient[Any, Any], tmp_path: Path
) -> None:
    response = await post(api, "edoc-new-thanh-hoa.edxml", COMMUNE_TOKEN)
    assert await error_code(response, 403) == "packet.forged_sender"
    assert rejections(tmp_path) == [("rejected", "packet.forged_sender")]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "auth.missing"),
        (auth("not-a-token-anyone-has-at-all"), "auth.invalid"),
        ({"Authorization": "Basic eDp5"}, "auth.missing"),
    ],
)
async def test_callers_must_present_a_token(
    api: TestClient[Any, Any], headers: dict[str, str], code: str
) -> None:
    response = await api.post("/v1/packets", data=b"<edXML/>", headers=headers)
    assert await error_code(response, 401) == code
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.asyncio
async def test_an_unknown_recipient_is_refused_and_nothing_is_kept(
    api: TestClient[Any, Any], tmp_path: Path
) -> None:
    body = (
        (EXAMPLES / "edoc-new-thanh-hoa.edxml").read_bytes().replace(b"000.22.00.H56", b"28.22.H17")
    )
    response = await api.post(
        "/v1/packets",
        data=body,
        headers={"Content-Type": "application/xml", **auth(PROVINCE_TOKEN)},
    )
    assert await error_code(response, 422) == "packet.unknown_recipient"
    assert (await response.json())["error"]["details"] == {"recipients": ["28.22.H17"]}
    with sqlite3.connect(tmp_path / "store.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM packets").fetchone() == (0,)


@pytest.mark.asyncio
async def test_hostile_xml_is_refused_with_its_code_and_audited(
    api: TestClient[Any, Any], tmp_path: Path
) -> None:
    bomb = b'<!DOCTYPE edXML [<!ENTITY x SYSTEM "file:///etc/passwd">]><edXML>&x;</edXML>'
    response = await api.post(
        "/v1/packets",
        data=bomb,
        headers={"Content-Type": "application/xml", **auth(PROVINCE_TOKEN)},
    )
    assert await error_code(response, 400) == "xml.external_entity"
    assert rejections(tmp_path) == [("rejected", "xml.external_entity")]


@pytest.mark.asyncio
@pytest.mark.parametrize("api", [2_000], indirect=True)
async def test_an_oversize_body_is_refused_from_its_declared_length(
    api: TestClient[Any, Any],
) -> None:
    response = await post(api, "edoc-new-thanh-hoa.edxml", PROVINCE_TOKEN)
    assert await error_code(response, 413) == "packet.too_large"


@pytest.mark.asyncio
@pytest.mark.parametrize("api", [2_000], indirect=True)
async def test_an_oversize_body_without_length_is_refused_while_streaming(
    api: TestClient[Any, Any],
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"<" * 1000

    response = await api.post(
        "/v1/packets",
        data=chunks(),
        headers={"Content-Type": "application/xml", **auth(PROVINCE_TOKEN)},
    )
    assert await error_code(response, 413) == "packet.too_large"


@pytest.mark.asyncio
async def test_another_clients_packet_looks_like_no_packet(api: TestClient[Any, Any]) -> None:
    response = await post(api, "tax-transport-vehicle-badge.json", TRANSPORT_TOKEN)
    location = response.headers["Location"]
    hidden = await api.get(location, headers=auth(COMMUNE_TOKEN))
    missing = await api.get(
        "/v1/packets/00000000-0000-0000-0000-000000000000", headers=auth(COMMUNE_TOKEN)
    )
    garbage = await api.get("/v1/packets/not-a-uuid", headers=auth(COMMUNE_TOKEN))
    bodies = [json.dumps(await r.json()) for r in (hidden, missing, garbage)]
    assert [r.status for r in (hidden, missing, garbage)] == [404, 404, 404]
    assert len(set(bodies)) == 1
