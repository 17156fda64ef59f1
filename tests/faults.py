"""A harness for fault tests: two daemon processes on RabbitMQ (the province sends, a commune
receives), a stream of packets between them, a fault injected mid-stream, and the count of what
the commune's server got: lost, duplicated, and how long after the fault ended the last packet
arrived. Each outcome is appended to ``$LGSP_FAULT_REPORT`` (JSON lines) when it is set, which
is how docs/reliability.md's table is made."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

from tests.agency_server import AgencyServer, agency_server
from tests.documents import numbered
from tests.test_daemon_process import log_tail, start
from tests.test_exchange_rabbitmq import BROKER, letter_to, remove_topology
from tests.test_idempotency import cut_after_sending

PROVINCE, COMMUNE = "000.00.00.H56", "000.21.00.H56"
TOKEN = "province-office-token-0123456789"
# Long enough to outlast a system down for two minutes.
RETRY_DELAYS = [0.5, 1, 2, 5, 10, 20, 30, 30, 30, 30, 30]
LETTER = letter_to(COMMUNE)


@dataclass(frozen=True)
class Outcome:
    """What a fault cost."""

    fault: str
    sent: int
    lost: int
    duplicated: int
    recovery_s: float

    def report(self) -> None:
        """Append to the fault report, when one is asked for."""
        target = os.environ.get("LGSP_FAULT_REPORT")
        if target:
            with Path(target).open("a", encoding="utf-8") as report:
                report.write(json.dumps(asdict(self)) + "\n")


@dataclass(frozen=True)
class Broker:
    """Where the daemons' bus is: a node's URL and the cluster's other nodes (host:port)."""

    url: str = BROKER
    nodes: tuple[str, ...] = ()


def _config(
    tmp: Path, name: str, exchange: str, served: str, inbox: str, known: str, broker: Broker
) -> Path:
    path = tmp / f"{name}.toml"
    client = (
        f'[[clients]]\nname = "province"\ntoken = "{TOKEN}"\nagencies = ["{served}"]\n'
        if served == PROVINCE
        else ""
    )
    path.write_text(
        f"""
[http]
port = 0
requests_per_second = 100000
burst = 1000000
[bus]
url = "{broker.url}"
cluster_nodes = {list(broker.nodes)}
exchange = "{exchange}"
[store]
path = "{tmp / f"{name}.sqlite3"}"
[delivery]
quick_retries = 0
retry_delays_s = {RETRY_DELAYS}
[daemon]
drain_s = 5
[[agencies]]
code = "{served}"
name = "{served}"
[agencies.endpoint]
url = "{inbox}"
timeout_s = 5
[[known_agencies]]
code = "{known}"
{client}"""
    )
    return path


class Exchange:
    """The two daemons, restartable, and the commune's system."""

    def __init__(
        self, tmp: Path, exchange: str, commune: AgencyServer, province: str, broker: Broker
    ) -> None:
        self.commune = commune
        self.sender_config = _config(tmp, "province", exchange, PROVINCE, province, COMMUNE, broker)
        self.receiver_config = _config(
            tmp, "commune", exchange, COMMUNE, commune.url, PROVINCE, broker
        )
        self.sender: asyncio.subprocess.Process | None = None
        self.receiver: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start_receiver(self) -> None:
        self.receiver, _ = await start(self.receiver_config)

    async def start_sender(self) -> None:
        self.sender, self.url = await start(self.sender_config)

    async def kill_receiver(self) -> None:
        assert self.receiver is not None
        self.receiver.send_signal(signal.SIGKILL)
        await self.receiver.wait()

    async def kill_sender(self) -> None:
        assert self.sender is not None
        self.sender.send_signal(signal.SIGKILL)
        await self.sender.wait()

    async def stop(self) -> None:
        for process in (self.sender, self.receiver):
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), timeout=30)


@asynccontextmanager
async def exchange(
    tmp: Path, commune: AgencyServer | None = None, broker: Broker | None = None
) -> AsyncIterator[Exchange]:
    """Both daemons running on a fresh exchange; the topology removed afterwards."""
    broker = broker or Broker()
    name = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    commune = commune or AgencyServer()
    try:
        async with agency_server(commune), agency_server(AgencyServer()) as province:
            pair = Exchange(tmp, name, commune, province.url, broker)
            try:
                await pair.start_receiver()
                await pair.start_sender()
                yield pair
            finally:
                await pair.stop()
    finally:
        await remove_topology(name, [PROVINCE, COMMUNE], RETRY_DELAYS, broker.url)


async def send(pair: Exchange, count: int, concurrency: int = 8) -> list[str]:
    """Submit ``count`` letters to the commune, ``concurrency`` at a time; their ids."""
    accepted: list[str] = []
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/xml"}
    async with aiohttp.ClientSession() as session:

        async def one() -> None:
            async with (
                gate,
                session.post(
                    f"{pair.url}/v1/packets", data=numbered(LETTER), headers=headers
                ) as response,
            ):
                assert response.status == 202, (
                    f"{await response.text()}\nthe sending daemon's log:\n"
                    f"{log_tail(pair.sender_config)}"
                )
                accepted.append(str((await response.json())["packet_id"]))

        await asyncio.gather(*(one() for _ in range(count)))
    return accepted


async def send_repeating(pair: Exchange, count: int, concurrency: int = 8) -> list[str]:
    """Submit ``count`` letters as systems that lose answers do: every fourth with its
    connection cut after the request went whole (no 202 heard), then sent again under the
    same Idempotency-Key; every fourth sent twice without a key (known by its DocumentId).
    Returns the ids the answers gave, one a letter."""
    accepted: list[str] = []
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/xml"}
    async with aiohttp.ClientSession() as session:

        async def post(letter: bytes, key: str | None) -> str:
            keyed = {**headers, "Idempotency-Key": key} if key else headers
            async with session.post(f"{pair.url}/v1/packets", data=letter, headers=keyed) as answer:
                assert answer.status == 202, await answer.text()
                return str((await answer.json())["packet_id"])

        async def one(index: int) -> None:
            letter, key = numbered(LETTER), str(uuid.uuid4())
            async with gate:
                if index % 4 == 0:
                    await cut_after_sending(pair.url, letter, key, TOKEN)
                    await asyncio.sleep(0.2)  # the system's retry, after its timeout
                    accepted.append(await post(letter, key))
                elif index % 4 == 1:
                    first = await post(letter, None)
                    assert await post(letter, None) == first
                    accepted.append(first)
                else:
                    accepted.append(await post(letter, key))

        await asyncio.gather(*(one(index) for index in range(count)))
    return accepted


async def settle(
    fault: str,
    pair: Exchange,
    accepted: list[str],
    fault_ended: float,
    timeout_s: float = 300,
) -> Outcome:
    """Wait for every accepted packet at the commune, then a moment for duplicates; count."""
    deadline = time.monotonic() + timeout_s
    wanted = set(accepted)
    # Polling: the deliveries are made by another process.
    while time.monotonic() < deadline and not wanted <= set(pair.commune.delivered()):  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    arrived = time.monotonic()
    await asyncio.sleep(2)  # a duplicate would show up now
    delivered = Counter(pair.commune.delivered())
    outcome = Outcome(
        fault=fault,
        sent=len(accepted),
        lost=len(wanted - set(delivered)),
        duplicated=sum(count - 1 for count in delivered.values() if count > 1),
        recovery_s=round(max(0.0, arrived - fault_ended), 1),
    )
    outcome.report()
    return outcome


async def stream_with(
    pair: Exchange, count: int, at: list[float], fault: Callable[[int], Awaitable[None]]
) -> tuple[list[str], float]:
    """Send ``count`` packets in slices; after each fraction in ``at`` of them, inject
    ``fault(i)``. Returns what was accepted and when the last fault ended."""
    accepted: list[str] = []
    done = 0
    ended = time.monotonic()
    for number, fraction in enumerate([*at, 1.0]):
        upto = int(count * fraction)
        accepted += await send(pair, upto - done)
        done = upto
        if number < len(at):
            await fault(number)
            ended = time.monotonic()
    return accepted, ended
