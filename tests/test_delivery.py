"""Pushing to a real agency system on loopback: what counts as delivered, retried, refused."""

from __future__ import annotations

import hashlib
import socket
import uuid
from collections.abc import AsyncIterator
from urllib.parse import unquote

import aiohttp
import pytest
import pytest_asyncio

from lgsp_adapter.errors import ErrorCode, LgspError, PermanentError, TransientError
from lgsp_adapter.exchange.delivery import Deliverer
from lgsp_adapter.registry.agencies import Endpoint
from lgsp_adapter.registry.endpoint_transport import redacted
from lgsp_adapter.store import StoredPacket
from tests.agency_server import AgencyServer, agency_server

PAYLOAD = '<?xml version="1.0"?>\r\n<edXML>Hà Nội</edXML>'.encode()
PACKET = StoredPacket(
    id=uuid.uuid4(),
    kind="edoc",
    sender="000.00.00.H56",
    recipients=["000.21.00.H56"],
    document_id="000.00.00.H56,2026/11/20,1234/UBND-TTĐT",
    content_type="application/xml",
    payload=PAYLOAD,
    sha256=hashlib.sha256(PAYLOAD).hexdigest(),
)


@pytest_asyncio.fixture
async def deliverer() -> AsyncIterator[Deliverer]:
    async with aiohttp.ClientSession() as session:
        yield Deliverer(session=session, quick_retries=2, quick_retry_delay_s=0.01)


def endpoint(url: str, **more: object) -> Endpoint:
    return Endpoint.model_validate({"url": url, "timeout_s": 2, **more})


@pytest.mark.asyncio
async def test_the_body_is_the_packet_byte_for_byte_and_headers_name_it(
    deliverer: Deliverer,
) -> None:
    async with agency_server(AgencyServer()) as agency:
        delivered = await deliverer.push(PACKET, "000.21.00.H56", endpoint(agency.url))
    assert (delivered.status, delivered.attempts) == (200, 1)
    (request,) = agency.received
    assert request.body == PAYLOAD
    assert request.headers["X-LGSP-Packet-Id"] == str(PACKET.id)
    assert request.headers["X-LGSP-Sender"] == "000.00.00.H56"
    assert request.headers["X-LGSP-Recipient"] == "000.21.00.H56"
    assert request.headers["X-LGSP-Kind"] == "edoc"
    assert unquote(request.headers["X-LGSP-Document-Id"]) == PACKET.document_id
    assert request.headers["Content-Type"] == "application/xml"


@pytest.mark.asyncio
async def test_a_blip_is_retried_at_once(deliverer: Deliverer) -> None:
    async with agency_server(AgencyServer(script=[503, 502])) as agency:
        delivered = await deliverer.push(PACKET, "000.21.00.H56", endpoint(agency.url))
    assert delivered.attempts == 3
    assert len(agency.received) == 3


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 503, 408, 429])
async def test_a_longer_outage_is_reported_for_the_durable_retries(
    deliverer: Deliverer, status: int
) -> None:
    async with agency_server(AgencyServer(then=status)) as agency:
        with pytest.raises(TransientError) as info:
            await deliverer.push(PACKET, "000.21.00.H56", endpoint(agency.url))
    assert info.value.code is ErrorCode.DELIVERY_UNAVAILABLE
    assert len(agency.received) == 3  # one try and two quick retries


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [400, 403, 404, 422, 301])
async def test_a_refusal_is_final_and_not_retried(deliverer: Deliverer, status: int) -> None:
    async with agency_server(AgencyServer(then=status)) as agency:
        with pytest.raises(PermanentError) as info:
            await deliverer.push(PACKET, "000.21.00.H56", endpoint(agency.url))
    assert info.value.code is ErrorCode.DELIVERY_REFUSED
    assert info.value.details == {"status": status}
    assert len(agency.received) == 1


@pytest.mark.asyncio
async def test_an_endpoint_slower_than_its_timeout_is_unavailable(deliverer: Deliverer) -> None:
    async with agency_server(AgencyServer(delay_s=1.0)) as agency:
        with pytest.raises(TransientError):
            await deliverer.push(PACKET, "000.21.00.H56", endpoint(agency.url, timeout_s=0.2))


@pytest.mark.asyncio
async def test_a_refused_connection_is_unavailable(deliverer: Deliverer) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransientError) as info:
        await deliverer.push(PACKET, "000.21.00.H56", endpoint(f"http://127.0.0.1:{port}/inbox"))
    assert "did not answer" in info.value.message


@pytest.mark.asyncio
async def test_endpoint_credentials_are_sent(deliverer: Deliverer) -> None:
    async with agency_server(AgencyServer()) as agency:
        await deliverer.push(
            PACKET,
            "000.21.00.H56",
            endpoint(agency.url, auth={"kind": "bearer", "token": "endpoint-secret"}),
        )
    assert agency.received[0].headers["Authorization"] == "Bearer endpoint-secret"


SECRET_QUERY = "?apikey=khoa-bi-mat-0123&unit=xa"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("script", "said"),
    [
        (AgencyServer(then=503), "000.21.00.H56's system answered HTTP 503"),
        (AgencyServer(then=400), "000.21.00.H56's system answered HTTP 400"),
        (AgencyServer(delay_s=1.0), "000.21.00.H56's system did not answer: timed out"),
        (None, "000.21.00.H56's system did not answer: cannot connect ("),
    ],
)
async def test_an_outcome_names_the_agency_never_its_address(
    deliverer: Deliverer,
    script: AgencyServer | None,
    said: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found by a black-box probe: the recipient's URL, query-string key included, went back
    to the sender in the delivery detail, and into every log."""
    caplog.set_level("DEBUG")
    info: pytest.ExceptionInfo[LgspError]
    if script is None:
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{probe.getsockname()[1]}/inbox"
        with pytest.raises(TransientError) as info:
            await deliverer.push(PACKET, "000.21.00.H56", endpoint(url + SECRET_QUERY))
    else:
        async with agency_server(script) as agency:
            url = agency.url
            with pytest.raises(LgspError) as info:
                await deliverer.push(
                    PACKET, "000.21.00.H56", endpoint(url + SECRET_QUERY, timeout_s=0.3)
                )
    assert info.value.message.startswith(said), info.value.message
    host = url.split("//")[1].split("/")[0]
    assert host not in info.value.message
    assert "apikey" not in info.value.message
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("lgsp_adapter")]
    assert not [line for line in ours if "khoa-bi-mat-0123" in line], ours


def test_a_logged_address_keeps_no_credentials() -> None:
    shown = redacted("https://user:mat-khau@xa.example.vn:8443/nhan?apikey=bi-mat&flag#frag")
    assert shown == "https://xa.example.vn:8443/nhan?apikey=**********&flag"
