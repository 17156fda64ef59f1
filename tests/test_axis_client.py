"""Our client of the national axis, against an axis on loopback that checks every request as the
axis does: the signature over the headers as received, hash-file against the file received."""

from __future__ import annotations

import base64
import hashlib
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
from lgsp_adapter.packets.axis_signature import parse_timestamp, verified_headers
from lgsp_adapter.packets.axis_wire import (
    MessageType,
    TransportStatus,
    answer,
    failure,
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
    raw: list[tuple[dict[str, str], bytes]] = field(default_factory=list)  # as they came
    broken: int | None = None  # answer every call with this HTTP status
    answers: dict[str, bytes] = field(default_factory=dict)  # an operation's answer, fixed

    async def handle(self, request: web.Request) -> web.Response:
        if self.broken is not None:
            return web.Response(status=self.broken, text="not the axis")
        operation = request.match_info["operation"]
        try:
            headers = verified_headers(request.headers, {SYSTEM: SECRET}.get)
            parse_timestamp(headers["timestamp"])
            body = await request.read()
            self.seen.append({"operation": operation, **headers})
            self.raw.append((dict(request.headers), body))
            return web.Response(body=await self._do(operation, headers, body))
        except LgspError as exc:
            return web.Response(body=failure(exc, DocId=""))

    async def _do(self, operation: str, headers: dict[str, str], body: bytes) -> bytes:
        if operation in self.answers:
            return self.answers[operation]
        if operation == "sendEdoc":
            doc_id = str(uuid.uuid4())
            self.documents[doc_id] = uploaded_file(body, required(headers, "hash-file"))
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
    # On the wire, checked apart from our own reading of it: as the vendors' SDK sends it.
    raw_headers, raw_body = state.raw[0]
    assert raw_body == EDXML.encode() + b"\r\n"
    assert raw_headers["Content-Type"] == "application/octet-stream"
    assert raw_headers["XroadVnpt-to"] == '["000.00.12.H56","000.21.00.H56"]'
    digest = hashlib.sha256(EDXML.encode()).digest()
    assert raw_headers["XroadVnpt-hash-file"] == "".join(f"{byte:x}" for byte in digest)
    assert sent["Content-Type"] == "application/octet-stream"
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


@pytest.mark.asyncio
async def test_one_recipient_travels_as_a_json_string_as_the_sdk_sends_it(
    axis: tuple[LoopbackAxis, str],
) -> None:
    state, url = axis
    async with aiohttp.ClientSession() as session:
        await client(url, session).send_edoc(
            EDXML.encode(),
            sender=SYSTEM,
            recipients=["000.00.12.H56"],
            message_type=MessageType.EDOC,
        )
    assert state.raw[0][0]["XroadVnpt-to"] == '"000.00.12.H56"'


@pytest.mark.asyncio
async def test_a_document_of_several_megabytes_is_fetched_whole(
    axis: tuple[LoopbackAxis, str],
) -> None:
    state, url = axis
    large = EDXML.encode() + b"<!-- " + b"x" * 6_000_000 + b" -->"
    state.documents["big"] = large
    async with aiohttp.ClientSession() as session:
        assert await client(url, session).get_edoc("big") == large


@pytest.mark.asyncio
async def test_base64_with_line_breaks_is_read_as_the_sdk_reads_it(
    axis: tuple[LoopbackAxis, str],
) -> None:
    state, url = axis
    wrapped = base64.encodebytes(EDXML.encode()).decode()  # 76 characters a line
    assert "\n" in wrapped
    state.answers["getEdoc"] = answer(data=wrapped)
    async with aiohttp.ClientSession() as session:
        assert await client(url, session).get_edoc("any") == EDXML.encode()


@pytest.mark.asyncio
@pytest.mark.parametrize("data", [None, "", 12])
async def test_an_ok_get_edoc_without_data_is_no_document(
    axis: tuple[LoopbackAxis, str], data: object
) -> None:
    state, url = axis
    state.answers["getEdoc"] = (
        b'{"status":"OK","ErrorCode":"0","ErrorDesc":""}' if data is None else answer(data=data)
    )
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TransientError, match="no data"):
            await client(url, session).get_edoc("any")


@pytest.mark.asyncio
async def test_an_ok_send_without_a_doc_id_is_not_sent_again(
    axis: tuple[LoopbackAxis, str],
) -> None:
    """Retrying would send the packet twice: a person must look."""
    state, url = axis
    state.answers["sendEdoc"] = answer()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(PermanentError, match="without a DocId"):
            await client(url, session).send_edoc(
                EDXML.encode(), sender=SYSTEM, recipients=[SYSTEM], message_type=MessageType.EDOC
            )
        state.answers["sendEdoc"] = answer(DocId=4711)  # the SDK reads a number too
        assert (
            await client(url, session).send_edoc(
                EDXML.encode(), sender=SYSTEM, recipients=[SYSTEM], message_type=MessageType.EDOC
            )
            == "4711"
        )


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [404, 401, 413])
async def test_an_answer_from_something_else_than_the_axis_is_refused_for_good(
    axis: tuple[LoopbackAxis, str], status: int
) -> None:
    """A wrong URL, a gateway refusing us, a packet too large: no retry mends them."""
    state, url = axis
    state.broken = status
    async with aiohttp.ClientSession() as session:
        with pytest.raises(PermanentError, match=f"HTTP {status}, not the axis") as caught:
            await client(url, session).received(MessageType.EDOC)
    assert caught.value.code is ErrorCode.DELIVERY_REFUSED
