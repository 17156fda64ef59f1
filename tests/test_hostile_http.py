"""Hostile requests at the HTTP door: a body that trickles in, bodies that are not what they
claim. Each gets its precise error, quickly, and changes nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from lgsp_adapter.daemon.config import Settings
from tests.agency_server import AgencyServer, agency_server
from tests.test_exchange_rabbitmq import COMMUNE, daemon, letter_to
from tests.test_registry_web import INTEGRATOR, PROVINCE, PROVINCE_TOKEN


def settings(tmp_path: Path, inbox: str) -> Settings:
    return Settings.model_validate(
        {
            "http": {"port": 0, "body_timeout_s": 1},
            "store": {"path": str(tmp_path / "store.sqlite3")},
            "agencies": [{"code": PROVINCE, "name": "tỉnh", "endpoint": {"url": inbox}}],
            "clients": [
                {"name": "province", "token": PROVINCE_TOKEN, "agencies": [PROVINCE]},
                {"name": "integrator", "token": INTEGRATOR, "role": "integrator"},
            ],
        }
    )


async def raw(url: str, request: bytes, then: bytes = b"", pause_s: float = 0) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    if pause_s:
        await asyncio.sleep(pause_s)
        writer.write(then)
    # The answer, not the connection's end: a server may keep it open for the rest of a body.
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    body = await asyncio.wait_for(reader.readexactly(length), timeout=10)
    writer.close()
    return head + body


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/v1/packets", "/v1/endpoints"])
async def test_a_trickling_body_is_cut_off(tmp_path: Path, path: str) -> None:
    async with (
        agency_server(AgencyServer()) as province,
        daemon(settings(tmp_path, province.url)) as url,
    ):
        token = PROVINCE_TOKEN if path == "/v1/packets" else INTEGRATOR
        began = time.monotonic()
        answer = await raw(
            url,
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/xml\r\nContent-Length: 5000\r\n"
            "Connection: close\r\n\r\n<?xml".encode(),
        )
        assert time.monotonic() - began < 5
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert b"http.body_timeout" in answer


@pytest.mark.asyncio
async def test_bodies_that_are_not_what_they_claim(tmp_path: Path) -> None:
    async with (
        agency_server(AgencyServer()) as province,
        daemon(settings(tmp_path, province.url)) as url,
    ):
        cases = [
            # Not UTF-8, though JSON must be.
            (
                b"/v1/endpoints",
                INTEGRATOR,
                b"application/json",
                b'{"code": "\xff\xfe"}',
                b"400",
                b"registry.invalid",
            ),
            # JSON nested past any sane depth.
            (
                b"/v1/endpoints",
                INTEGRATOR,
                b"application/json",
                b"[" * 50_000,
                b"400",
                b"registry.invalid",
            ),
            # A packet whose XML is cut short, declared as XML.
            (
                b"/v1/packets",
                PROVINCE_TOKEN,
                b"application/xml",
                b"<edXML:Envelope",
                b"400",
                b"xml.malformed",
            ),
            # A content type that cannot travel as an AMQP property.
            (
                b"/v1/packets",
                PROVINCE_TOKEN,
                "application/xml; x=\u00ff".encode("latin-1"),
                b"<a/>",
                b"400",
                b"packet.unknown_kind",
            ),
        ]
        for path, token, media, body, status, code in cases:
            answer = await raw(
                url,
                b"POST "
                + path
                + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + token.encode()
                + b"\r\nContent-Type: "
                + media
                + f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body,
            )
            assert answer.startswith(b"HTTP/1.1 " + status), (path, answer[:300])
            assert code in answer, (path, answer[:300])


@pytest.mark.asyncio
async def test_values_that_reach_headers_or_file_names_cannot_inject(tmp_path: Path) -> None:
    # A document id carrying CR/LF and a header of its own, an attachment named to climb out
    # of a folder: the letter is accepted (the standard allows odd text) with a warning on the
    # name, and the agency system gets neither an extra header nor a split one.
    letter = (
        letter_to(COMMUNE, number=1234)
        .decode()
        .replace(
            "1234/UBND-KSTTHC</edXML:DocumentId>",
            "1234/UBND-KSTTHC&#13;&#10;X-Injected: yes</edXML:DocumentId>",
        )
        .replace(">cong-van-1234.zip<", ">../../etc/cong-van-1234.zip<")
        .encode()
    )
    async with agency_server(AgencyServer()) as commune:
        config = Settings.model_validate(
            {
                "http": {"port": 0},
                "store": {"path": str(tmp_path / "store.sqlite3")},
                "delivery": {"quick_retries": 0, "retry_delays_s": [0.2]},
                "agencies": [
                    {"code": PROVINCE, "name": "tỉnh", "endpoint": {"mode": "pull"}},
                    {"code": COMMUNE, "name": "xã", "endpoint": {"url": commune.url}},
                ],
                "clients": [{"name": "province", "token": PROVINCE_TOKEN, "agencies": [PROVINCE]}],
            }
        )
        async with daemon(config) as url:
            request = (
                f"POST /v1/packets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {PROVINCE_TOKEN}"
                f"\r\nContent-Type: application/xml\r\nContent-Length: {len(letter)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode() + letter
            answer = await raw(url, request)
            assert answer[9:12] == b"202", answer[:300]
            assert b"edxml.unsafe_attachment_name" in answer
            deadline = time.monotonic() + 10
            while not commune.received and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    (delivered,) = commune.received
    assert "X-Injected" not in delivered.headers
    assert delivered.headers["X-LGSP-Document-Id"].endswith("KSTTHC%0D%0AX-Injected:%20yes")
