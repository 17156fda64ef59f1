"""A real agency system on loopback for tests: an aiohttp server that records what it is sent
and answers as scripted (fail a few times, refuse, be slow)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Received:
    """One request the agency system got."""

    body: bytes
    headers: dict[str, str]
    status: int
    at: float = field(default_factory=time.monotonic)


@dataclass
class AgencyServer:
    """Answers each POST with the next scripted status (then ``then``), after ``delay_s``."""

    script: list[int] = field(default_factory=list)
    then: int = 200
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)
    probes: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = self.script.pop(0) if self.script else self.then
        self.received.append(Received(body, dict(request.headers), status))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return web.Response(status=status, text="ok" if status < 300 else "no")

    async def answer_options(self, request: web.Request) -> web.Response:
        """An endpoint test: answered, and counted apart from deliveries."""
        self.probes.append(dict(request.headers))
        # A cookie, as many web stacks set one: it must never ride along to another agency.
        headers = {"Allow": "POST, OPTIONS", "Set-Cookie": f"SESSION={id(self)}; Path=/"}
        return web.Response(status=204, headers=headers)

    def delivered(self) -> list[str]:
        """The packet ids of the requests answered 2xx, in order (a packet may repeat)."""
        return [r.headers["X-LGSP-Packet-Id"] for r in self.received if 200 <= r.status < 300]

    def taken_more_than_once(self) -> dict[str, list[float]]:
        """The packets answered 2xx more than once, with when each of those requests came."""
        arrivals: dict[str, list[float]] = {}
        for request in self.received:
            if 200 <= request.status < 300:
                arrivals.setdefault(request.headers["X-LGSP-Packet-Id"], []).append(request.at)
        return {packet: at for packet, at in arrivals.items() if len(at) > 1}


@asynccontextmanager
async def agency_server(server: AgencyServer) -> AsyncIterator[AgencyServer]:
    """Serve ``server`` on a free loopback port for the duration."""
    app = web.Application()
    app.router.add_post("/inbox", server.handle)
    app.router.add_route("OPTIONS", "/inbox", server.answer_options)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    server.url = str(test_server.make_url("/inbox"))
    try:
        yield server
    finally:
        await test_server.close()


async def arrival(server: AgencyServer, packet_id: str, timeout_s: float = 10) -> None:
    """Wait until ``server`` has taken ``packet_id`` (another task or process delivers it)."""
    deadline = time.monotonic() + timeout_s
    while packet_id not in server.delivered() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
