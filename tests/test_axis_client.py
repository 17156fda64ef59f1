"""Our client of the national axis, against an axis on loopback that checks every request as the
axis does: the signature over the headers as received, hash-file against the file received."""

from __future__ import annotations

import base64
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from lgsp_adapter.errors import ErrorCode, LgspError, PermanentError, TransientError
from lgsp_adapter.exchange.axis_client import VIETNAM, AxisClient
from lgsp_adapter.packets.axis_signature import file_hashes, parse_timestamp, verified_headers
from lgsp_adapter.packets.axis_wire import (
    MessageType,
    TransportStatus,
    answer,
    failure,
    logical,
    required,
    uploaded_file,
)

SYSTEM = "000.00.00.H56"
SECRET = "the-systems-secret"
EDXML = '<?xml version="1.0" encoding="UTF-8"?><edXML:edXMLEnvelope>Công văn</edXML:edXMLEnvelope>'


@dataclass
class LoopbackAxis:
    """Just enough of the axis to answer our client, each request checked as the axis would."""

    documents: dict[str, bytes] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    seen: list[dict[str, str]] = field(default_factory=list)
    broken: int | None = None  # answer every call with this HTTP status

    async def handle(self, request: web.Request) -> web.Response:
        if self.broken is not None:
            return web.Response(status=self.broken, text="not the axis")
        operation = request.match_info["operation"]
        try:
            headers = verified_headers(request.headers, SECRET)
            parse_timestamp(headers["timestamp"])
            self.seen.append({"operation": operation, **headers})
            return web.Response(body=await self._do(operation, headers, await request.read()))
        except LgspError as exc:
            return web.Response(body=failure(exc, DocId=""))

    async def _do(self, operation: str, headers: dict[str, str], body: bytes) -> bytes:
        if operation == "sendEdoc":
            doc_id = str(uuid.uuid4())
            self.documents[doc_id] = uploaded_file(body, logical(headers, "hash-file"))
            return answer(DocId=doc_id)
        if operation == "getReceivedEdocList":
            return answer(data=[{"docId": d, "from": SYSTEM} for d in self.documents])
        if operation == "getEdoc":
            data = self.documents[required(headers, "docId")]
            return answer(data=base64.b64encode(data).decode())
        if operation == "updateStatus":
            self.statuses[required(headers, "docId")] = required(headers, "status")
            return answer()
        return failure(PermanentError(ErrorCode.AXIS_BAD_REQUEST, f"no operation {operation}"))


@pytest_asyncio.fixture
async def axis() -> AsyncIterator[tuple[LoopbackAxis, str]]:
    state = LoopbackAxis()
    app = web.Application()
    app.router.add_post("/{operation}", state.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield state, str(server.make_url(""))


def client(url: str, session: aiohttp.ClientSession, secret: str = SECRET) -> AxisClient:
    return AxisClient(url, system_id=SYSTEM, secret=secret, session=session, timeout_s=5)


@pytest.mark.asyncio
async def test_a_packet_sent_arrives_byte_for_byte_and_comes_back_by_poll(
    axis: tuple[LoopbackAxis, str],
) -> None:
    state, url = axis
    async with aiohttp.ClientSession() as session:
        calls = client(url, session)
        doc_id = await calls.send_edoc(
            EDXML.encode(),
            sender=SYSTEM,
            recipients=["000.00.12.H56", "000.21.00.H56"],
            message_type=MessageType.EDOC,
        )
        assert state.documents[doc_id] == EDXML.encode()  # the SDK's CRLF is not part of it
        listed = await calls.received(MessageType.EDOC)
        assert [item["docId"] for item in listed] == [doc_id]
        assert await calls.get_edoc(doc_id) == EDXML.encode()
        await calls.update_status(doc_id, TransportStatus.DONE)
    assert state.statuses == {doc_id: "done"}
    sent = state.seen[0]
    assert sent["operation"] == "sendEdoc"
    assert sent["systemid"] == SYSTEM
    assert sent["to"] == "000.00.12.H56,000.21.00.H56"
    assert sent["Content-Type"] == "application/octet-stream"
    assert sent["hash-file"] == file_hashes(EDXML.encode())[1]  # as the vendors' SDK writes it
    written = parse_timestamp(sent["timestamp"]).replace(tzinfo=VIETNAM)
    assert abs((datetime.now(VIETNAM) - written).total_seconds()) < 60


@pytest.mark.asyncio
async def test_a_refusal_by_the_axis_is_for_good_and_names_its_code(
    axis: tuple[LoopbackAxis, str],
) -> None:
    _, url = axis
    async with aiohttp.ClientSession() as session:
        with pytest.raises(PermanentError, match=r"axis\.signature_invalid") as caught:
            await client(url, session, secret="not-the-secret").received(MessageType.EDOC)
    assert caught.value.code is ErrorCode.DELIVERY_REFUSED
    assert caught.value.details["axis_error"] == "axis.signature_invalid"


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 503, 429, 200])
async def test_an_axis_that_answers_badly_is_a_passing_fault(
    axis: tuple[LoopbackAxis, str], status: int
) -> None:
    state, url = axis
    state.broken = status  # 200 with a body that is not the axis' JSON
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TransientError) as caught:
            await client(url, session).received(MessageType.EDOC)
    assert caught.value.code is ErrorCode.DELIVERY_UNAVAILABLE


@pytest.mark.asyncio
async def test_an_axis_that_does_not_answer_is_a_passing_fault() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TransientError, match="no answer"):
            await client(f"http://127.0.0.1:{port}", session).received(MessageType.EDOC)
