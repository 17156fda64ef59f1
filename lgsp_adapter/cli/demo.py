"""``lgsp-adapter demo``: a real exchange between Thanh Hóa agencies, in one process.

One daemon on the embedded bus serves the provincial office, the department of construction
(transport), two communes and the tax office; each agency's system is a small HTTP server on
loopback. The office sends a letter with an attachment to the department and both communes; one
commune's system fails twice before it accepts, so the durable retries show; a commune answers
with status 03; the department sends vehicle badges to the tax office, which answers with a
tax status; an integrator registers a commune live, then another whose document software
speaks the national axis' protocol and fetches its letter so. Each packet's journey is printed
from the audit log.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
from aiohttp import web

from lgsp_adapter.audit.bundle import dump, make_bundle, verify_bundle
from lgsp_adapter.audit.signing import LogKey
from lgsp_adapter.audit.verify import verify_log
from lgsp_adapter.cli import demo_packets as packets
from lgsp_adapter.cli.demo_axis import axis_software_joins
from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.daemon.run import run_daemon
from lgsp_adapter.store.sqlite import SqliteStore

FINAL = {"delivered", "refused", "dead_lettered", "dropped"}


@dataclass
class AgencySystem:
    """An agency's own software: takes packets, and fails ``failures`` times first."""

    code: str
    failures: int = 0
    received: list[bytes] = field(default_factory=list)
    url: str = ""

    async def inbox(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.failures > 0:
            self.failures -= 1
            return web.Response(status=503, text="busy")
        self.received.append(body)
        return web.Response(text="ok")


@asynccontextmanager
async def running(system: AgencySystem) -> AsyncIterator[AgencySystem]:
    """Serve an agency system on a free loopback port."""
    app = web.Application()
    app.router.add_post("/inbox", system.inbox)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    system.url = f"http://{host}:{port}/inbox"
    try:
        yield system
    finally:
        await runner.cleanup()


def _command() -> str:
    """How the person who ran the demo runs ``lgsp-adapter``: by name if it is on their PATH,
    else by its path in the virtual environment (``make demo`` does not activate one)."""
    if shutil.which("lgsp-adapter"):
        return "lgsp-adapter"
    script = Path(sys.executable).with_name("lgsp-adapter")
    if not script.exists():
        return f"{sys.executable} -m lgsp_adapter"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


COMMAND = _command()


def settings_for(
    data_dir: Path, systems: dict[str, AgencySystem], tokens: dict[str, str], integrator: str
) -> Settings:
    """One daemon serving the demo's agencies, with quick durable retries to watch and an
    integrator who registers one more while it runs."""
    return Settings.model_validate(
        {
            "http": {"port": 0},
            "store": {"path": str(data_dir / "lgsp-adapter.sqlite3")},
            "delivery": {"quick_retries": 0, "retry_delays_s": [0.5, 1, 2, 4]},
            "daemon": {"drain_s": 5},
            "agencies": [
                {"code": code, "name": packets.NAMES[code], "endpoint": {"url": system.url}}
                for code, system in systems.items()
            ],
            "clients": [
                *(
                    {"name": f"system-{code}", "token": token, "agencies": [code]}
                    for code, token in tokens.items()
                ),
                {"name": "integrator", "token": integrator, "role": "integrator"},
            ],
        }
    )


class Exchange:
    """Talks to the daemon as the agencies' systems do."""

    def __init__(self, url: str, tokens: dict[str, str], session: aiohttp.ClientSession) -> None:
        self._url = url
        self._tokens = tokens
        self._session = session

    async def send(self, sender: str, body: bytes, content_type: str) -> str:
        async with self._session.post(
            f"{self._url}/v1/packets",
            data=body,
            headers={
                "Authorization": f"Bearer {self._tokens[sender]}",
                "Content-Type": content_type,
            },
        ) as response:
            answer: dict[str, Any] = await response.json()
            if response.status != 202:
                raise RuntimeError(f"the exchange refused the packet: {answer}")
            return str(answer["packet_id"])

    async def settled(self, sender: str, packet_id: str, timeout_s: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            async with self._session.get(
                f"{self._url}/v1/packets/{packet_id}",
                headers={"Authorization": f"Bearer {self._tokens[sender]}"},
            ) as response:
                state: dict[str, Any] = await response.json()
            if all(d["state"] in FINAL for d in state["deliveries"]) or time.monotonic() > deadline:
                return state
            await asyncio.sleep(0.1)


def journey(title: str, state: dict[str, Any], say: Callable[[str], None]) -> bool:
    """Print a packet's journey; True when every recipient has it."""
    say(f"\n{title}\n  packet {state['packet_id']}  ({state['kind']}, from {state['sender']})")
    start: datetime | None = None
    for entry in state["history"]:
        at = datetime.fromisoformat(entry["at"])
        start = start or at
        where = entry.get("recipient") or ""
        note = f"  {entry['detail']}" if entry.get("detail") else ""
        line = f"  +{(at - start).total_seconds():6.2f}s  {entry['event']:<13} {where:<28}{note}"
        say(line.rstrip())
    ok = all(d["state"] == "delivered" for d in state["deliveries"])
    for d in state["deliveries"]:
        say(
            f"  -> {d['recipient']} {packets.NAMES.get(d['recipient'], '')}: {d['state']}"
            f" after {d['attempts']} attempt(s)"
        )
    return ok


async def run_demo(data_dir: Path, say: Callable[[str], None]) -> bool:
    """Run the exchange; True when every packet reached every recipient."""
    later = {packets.NEW_COMMUNE, packets.AXIS_COMMUNE}  # registered while the daemon runs
    systems = {code: AgencySystem(code) for code in packets.NAMES if code not in later}
    systems[packets.COMMUNES[1]].failures = 2
    tokens = {code: secrets.token_urlsafe(24) for code in systems}
    integrator = secrets.token_urlsafe(24)
    newcomer = AgencySystem(packets.NEW_COMMUNE)
    async with AsyncExitStack() as stack:
        for system in [*systems.values(), newcomer]:
            await stack.enter_async_context(running(system))
        settings = settings_for(data_dir, systems, tokens, integrator)
        stop = asyncio.Event()
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        daemon = asyncio.create_task(run_daemon(settings, stop, ready.set_result))
        try:
            url = await asyncio.wait_for(asyncio.shield(ready), timeout=30)
            session = await stack.enter_async_context(aiohttp.ClientSession())
            exchange = Exchange(url, tokens, session)
            say(f"lgsp-adapter demo: one daemon on the embedded bus at {url}, store in {data_dir}")
            all_ok = True
            ids = []
            for title, sender, body, content_type in _first_steps():
                packet_id = await exchange.send(sender, body, content_type)
                ids.append(packet_id)
                all_ok &= journey(title, await exchange.settled(sender, packet_id), say)
            all_ok &= await register_live(url, integrator, newcomer, session, say)
            packet_id = await exchange.send(
                packets.PROVINCE,
                packets.document((packets.NEW_COMMUNE,), number="1240"),
                "application/xml",
            )
            title = "6. The office's next letter, 1240/UBND-KSTTHC, reaches the new system"
            all_ok &= journey(title, await exchange.settled(packets.PROVINCE, packet_id), say)
            all_ok &= len(newcomer.received) == 1
            fetched, packet_id = await axis_software_joins(
                url, integrator, session, say, exchange.send
            )
            title = "  Its journey, as for any packet"
            all_ok &= fetched and journey(
                title, await exchange.settled(packets.PROVINCE, packet_id), say
            )
        finally:
            stop.set()
            await asyncio.wait_for(daemon, timeout=30)
    store = settings.store.path
    say(f"\n{'Every packet reached every recipient.' if all_ok else 'NOT every packet arrived.'}")
    verified = await audit_the_log(settings, ids[0], data_dir, say)
    say(
        f"\nSee one packet's journey again:  {COMMAND} audit show {ids[0]} --store {store}"
        f"\nRead a packet as the adapter does:  {COMMAND} inspect FILE"
    )
    return all_ok and verified


def _first_steps() -> list[tuple[str, str, bytes, str]]:
    """The demo's first four packets: a title, the sender, the body and its media type."""
    return [
        (
            "1. The provincial office sends letter 1234/UBND-KSTTHC with an attachment",
            packets.PROVINCE,
            packets.document(),
            "application/xml",
        ),
        (
            "2. UBND xã Quảng Phú answers with status 03 (accepted)",
            packets.COMMUNES[0],
            packets.accepted_status(packets.COMMUNES[0]),
            "application/xml",
        ),
        (
            "3. The department sends vehicle badge records to the tax office",
            packets.DEPARTMENT,
            packets.badges(),
            "application/json",
        ),
        (
            "4. The tax office answers with the holder's tax status",
            packets.TAX_OFFICE,
            packets.tax_status(),
            "application/json",
        ),
    ]


async def register_live(
    url: str,
    token: str,
    system: AgencySystem,
    session: aiohttp.ClientSession,
    say: Callable[[str], None],
) -> bool:
    """What an integrator does for a commune joining: register its system while the daemon
    runs, and test that it answers."""
    code = system.code
    say(f"\n5. An integrator registers the system of {packets.NAMES[code]} ({code}), live")
    headers = {"Authorization": f"Bearer {token}"}
    record = {"code": code, "name": packets.NAMES[code], "endpoint": {"url": system.url}}
    async with session.post(f"{url}/v1/endpoints", json=record, headers=headers) as response:
        answer: dict[str, Any] = await response.json()
    if response.status != 201:
        say(f"  registration refused: {answer}")
        return False
    say(
        f"  POST /v1/endpoints -> 201, revision {answer['revision']}; its system's token is "
        "in this answer, once"
    )
    async with session.post(f"{url}/v1/endpoints/{code}/test", headers=headers) as response:
        report: dict[str, Any] = await response.json()
    say(
        f"  POST /v1/endpoints/{code}/test -> {report['verdict']}, HTTP {report['status']}, "
        f"{report['latency_ms']} ms"
    )
    return bool(report.get("ok"))


async def audit_the_log(
    settings: Settings, packet_id: str, data_dir: Path, say: Callable[[str], None]
) -> bool:
    """What an auditor does next: verify the whole log, then take one packet's evidence away
    and check it with nothing but the file and the published key."""
    store_path = settings.store.path
    key = LogKey.load(settings.audit.key_path(store_path), settings.audit.log_name())
    public_key = data_dir / "audit-public.key"
    public_key.write_text(key.verifier.encoded() + "\n", encoding="utf-8")
    async with await SqliteStore.open(store_path) as store:
        report = await verify_log(store.audit, key.verifier)
        history = await store.history(UUID(packet_id))
        bundle = await make_bundle(
            store.audit,
            history,
            subject={"packet_id": packet_id},
            verifier=key.verifier,
            key=key,
        )
    bundle_path = data_dir / f"evidence-{packet_id}.json"
    bundle_path.write_bytes(dump(bundle))
    say(f"\nAudit log: {report.summary()}")
    for problem in report.problems[:5]:
        say(f"  {problem.message}")
    check = verify_bundle(bundle_path.read_bytes(), key.verifier)
    say(
        f"Evidence for packet 1: {check.entries} entries proven in the signed log"
        f" (size {check.checkpoint.size}), {bundle_path.stat().st_size:,} bytes"
        f"\nAn auditor checks it offline, with nothing but the file and the published key:"
        f"\n  {COMMAND} audit verify-bundle {bundle_path} --public-key {public_key}"
        f"\nand re-checks the whole log:"
        f"\n  {COMMAND} audit verify --store {store_path} --public-key {public_key}"
    )
    return report.ok
