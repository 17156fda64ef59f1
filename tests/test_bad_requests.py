"""Unparsable HTTP requests against the running daemon: refused with 400, and logged as one
WARNING line, rate-limited, never aiohttp's ERROR traceback (found by a black-box probe)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.test_exchange_embedded import exchange, servers
from tests.test_hostile_http import raw

BAD = [
    b"POST /v1/packets HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"GET /v1/packets HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not HTTP at all\r\n\r\n",
]


@pytest.mark.asyncio
async def test_a_flood_of_malformed_requests_makes_one_warning_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with exchange(tmp_path, servers()) as (url, _):
        answers = [await raw(url, request) for request in BAD * 5]
    assert all(a.startswith(b"HTTP/1.") and b" 400 " in a.split(b"\r\n")[0] for a in answers)
    server = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert [r.levelname for r in server] == ["WARNING"], [r.getMessage() for r in server]
    assert server[0].exc_info is None
    assert "a malformed request from 127.0.0.1 refused with HTTP 400" in server[0].getMessage()
