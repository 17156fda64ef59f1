"""End-to-end benchmark of the exchange, on the embedded bus or through RabbitMQ.

Embedded: one daemon (`lgsp-adapter serve`, its own process) serves the sender and the recipient.
RabbitMQ: daemon A serves the sender and daemon B the recipient, separate processes on the local
broker. The recipient's system is an aiohttp server in this process that answers 200 and notes
when each packet arrives. Concurrent submitters POST 2 KB edXML documents for a while; the
benchmark reports delivered packets per second and the submit-to-delivered latency (p50, p99),
with durability on (SQLite synchronous=FULL, persistent confirmed messages) and the audit log
written for every step. Broker, daemons and load generator share this machine.

    python bench/exchange.py [--bus embedded|rabbitmq] [--seconds 10] [--submitters 50]

The raw aio-pika baseline and the ratio against it are the performance issue's.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
from aiohttp import web
from proc import CpuMeter, broker_pid, peak_rss_bytes  # bench/: scripts, not a package

from lgsp_adapter.bus.topology import Topology
from lgsp_adapter.packets.attachment import Attachment
from lgsp_adapter.packets.edxml_codec import render_edxml
from lgsp_adapter.packets.edxml_model import (
    Body,
    DocumentEnvelope,
    DocumentHeader,
    DocumentMessageHeader,
    EdocPacket,
    Manifest,
    ManifestReference,
    Organization,
)

SENDER, RECIPIENT = "000.00.00.H56", "000.21.00.H56"
TOKEN = "bench-client-token-0123456789abcdef"


_NUMBER = "0" * 10  # where each submission's own number goes (the exchange knows a document
# by its sender and DocumentId: the same document again is the same packet, kept once)


def numbered_bodies(template: bytes) -> Iterator[bytes]:
    """``template`` as documents of their own, each under the next number."""
    head, _, tail = template.partition(_NUMBER.encode())
    for number in itertools.count(1):
        yield head + f"{number:010d}".encode() + tail


def document(size: int = 2048) -> bytes:
    """An edXML document of about ``size`` bytes, one small attachment."""
    attachment = Attachment.from_bytes(
        os.urandom(max(1, (size - 1500) * 3 // 4)), content_id="cid:1", name="a.pdf"
    )
    packet = EdocPacket(
        envelope=DocumentEnvelope(
            header=DocumentHeader(
                message_header=DocumentMessageHeader(
                    sender=Organization(organ_id=SENDER, organ_name="UBND tỉnh Thanh Hóa"),
                    recipients=[Organization(organ_id=RECIPIENT, organ_name="UBND xã Quảng Phú")],
                    document_id=f"{SENDER},2026/11/20,{_NUMBER}/UBND-VP",
                    subject="Văn bản thử tải",
                )
            ),
            body=Body(manifest=Manifest(references=[ManifestReference(content_id="cid:1")])),
        ),
        attachments=[attachment],
    )
    return render_edxml(packet)


BROKER = "amqp://guest:guest@127.0.0.1:5672/"


def config(
    path: Path, store: Path, inbox: str, served: list[str], bus: dict[str, str] | None
) -> Path:
    """A daemon's settings: it serves ``served``, knows the others, and the bench client."""
    agencies = "".join(
        f'[[agencies]]\ncode = "{code}"\nname = "{code}"\n[agencies.endpoint]\nurl = "{inbox}"\n'
        for code in served
    )
    known = "".join(
        f'[[known_agencies]]\ncode = "{code}"\n'
        for code in (SENDER, RECIPIENT)
        if code not in served
    )
    client = (
        f'[[clients]]\nname = "bench"\ntoken = "{TOKEN}"\nagencies = ["{SENDER}"]\n'
        if SENDER in served
        else ""
    )
    bus_section = "".join(f'{k} = "{v}"\n' for k, v in (bus or {}).items())
    path.write_text(
        # The bench client is one token sending as fast as it can: the per-token limit, there
        # to protect other agencies, would measure itself.
        f"[http]\nport = 0\nrequests_per_second = 100000\nburst = 1000000\n"
        f'[store]\npath = "{store}"\n[bus]\nprefetch = 64\n{bus_section}'
        f"{agencies}{known}{client}"
    )
    return path


async def start(config_path: Path) -> tuple[asyncio.subprocess.Process, str, asyncio.Task[None]]:
    """Start a daemon; returns it, its URL and the task that drains its log."""
    daemon = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lgsp_adapter",
        "serve",
        "--config",
        str(config_path),
        stderr=asyncio.subprocess.PIPE,
    )
    assert daemon.stderr is not None
    while True:
        line = (await daemon.stderr.readline()).decode()
        if not line:
            raise RuntimeError("the daemon did not start")
        if " on http://" in line:
            url = line.split(" on ", 1)[1].split()[0]
            return daemon, url, asyncio.create_task(_drain(daemon.stderr))


async def remove_topology(exchange: str) -> None:
    """Leave the broker as we found it."""
    topology = Topology(exchange)
    connection = await aio_pika.connect(BROKER)
    async with connection:
        channel = await connection.channel()
        for code in (SENDER, RECIPIENT):
            names = [topology.agency_queue(code), topology.dead_queue(code)]
            names += [topology.retry_queue(code, d) for d in (5, 30, 120, 600, 1800, 3600)]
            for name in names:
                await channel.queue_delete(name)
        await channel.exchange_delete(exchange)
        await channel.exchange_delete(topology.dead_exchange)


async def run(
    bus: str, seconds: float, submitters: int, rate: float, size: int = 2048
) -> dict[str, Any]:
    arrived: dict[str, float] = {}

    async def inbox(request: web.Request) -> web.Response:
        await request.read()
        arrived[request.headers["X-LGSP-Packet-Id"]] = time.monotonic()
        return web.Response(text="ok")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/inbox", inbox)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    inbox_url = f"http://127.0.0.1:{runner.addresses[0][1]}/inbox"
    exchange = f"lgsp.bench.{os.getpid()}"
    daemons = []
    with tempfile.TemporaryDirectory() as folder:
        here = Path(folder)
        if bus == "embedded":
            paths = [config(here / "a.toml", here / "a.db", inbox_url, [SENDER, RECIPIENT], None)]
        else:
            settings = {"url": BROKER, "exchange": exchange}
            paths = [
                config(here / "b.toml", here / "b.db", inbox_url, [RECIPIENT], settings),
                config(here / "a.toml", here / "a.db", inbox_url, [SENDER], settings),
            ]
        for path in paths:
            daemons.append(await start(path))
        url = daemons[-1][1]
        template = document(size)
        bodies = numbered_bodies(template)
        names = ["daemon"] if bus == "embedded" else ["daemon B", "daemon A"]
        parts = {name: d.pid for name, (d, _, _) in zip(names, daemons, strict=True)}
        meter = CpuMeter({**parts, "broker": broker_pid(), "load generator": os.getpid()})
        meter.start()
        submitted: dict[str, float] = {}
        failures: list[str] = []
        stop_at = time.monotonic() + seconds

        # With --rate, each submitter keeps to its share of it (open loop), so latency is
        # measured below capacity instead of behind a growing backlog.
        interval = submitters / rate if rate else 0.0

        async def submitter(session: aiohttp.ClientSession, index: int) -> None:
            headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/xml"}
            next_at = time.monotonic() + interval * index / submitters  # spread, not in bursts
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            while time.monotonic() < stop_at:
                started = time.monotonic()
                body = next(bodies)
                async with session.post(f"{url}/v1/packets", data=body, headers=headers) as answer:
                    if answer.status != 202:
                        failures.append(f"{answer.status} {(await answer.text())[:200]}")
                        continue
                    packet_id = (await answer.json())["packet_id"]
                submitted[packet_id] = started
                if interval:
                    next_at += interval
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=submitters),
            timeout=aiohttp.ClientTimeout(total=300),
        ) as session:
            began = time.monotonic()
            await asyncio.gather(*(submitter(session, i) for i in range(submitters)))
            while len(arrived) < len(submitted) and time.monotonic() < stop_at + 30:
                await asyncio.sleep(0.05)
            elapsed = max(arrived.values(), default=began) - began
        used = meter.stop()
        peaks = [peak_rss_bytes(daemon.pid) for daemon, _, _ in daemons]
        for daemon, _, drain in daemons:
            daemon.terminate()
            await daemon.wait()
            drain.cancel()
    if bus == "rabbitmq":
        await remove_topology(exchange)
    await runner.cleanup()
    latencies = sorted(arrived[p] - submitted[p] for p in submitted if p in arrived)
    delivered = len(latencies)

    def percentile(q: float) -> float:
        return 1000 * latencies[int(q * (delivered - 1))] if latencies else 0.0

    return {
        "submitted": len(submitted),
        "delivered": delivered,
        "failed": len(failures),
        "failures": failures[:5],  # what the daemon said, for whoever reads a failed run
        "packets_per_s": delivered / elapsed if elapsed else 0.0,
        "p50_ms": percentile(0.50),
        "p95_ms": percentile(0.95),
        "p99_ms": percentile(0.99),
        "document_bytes": len(template),
        "submitters": submitters,
        # The daemons' own cost, whoever of them does the work (sender's, recipient's).
        "cpu_s_per_packet": sum(used[name] for name in names) / delivered if delivered else 0.0,
        # Everyone's, each on its own: on a shared machine, the broker's and the load
        # generator's CPU is what the daemons cannot have.
        "cpu_ms_per_packet_by_part": {
            name: round(1000 * seconds / delivered, 3) if delivered else 0.0
            for name, seconds in used.items()
        },
        "peak_rss_mb": [round(peak / 2**20, 1) for peak in peaks],
    }


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bus", choices=["embedded", "rabbitmq"], default="embedded")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--submitters", type=int, default=50)
    parser.add_argument("--rate", type=float, default=0.0, help="packets/s in all; 0: flat out")
    parser.add_argument("--size", type=int, default=2048, help="document bytes (about)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures = asyncio.run(run(args.bus, args.seconds, args.submitters, args.rate, args.size))
    where = "embedded bus, one daemon" if args.bus == "embedded" else "RabbitMQ, two daemons"
    print(
        f"{where}, {figures['document_bytes']:,} B documents, {args.submitters} submitters"
        f"{f' at {args.rate:g}/s' if args.rate else ''}: "
        f"{figures['delivered']:,}/{figures['submitted']:,} delivered, "
        f"{figures['packets_per_s']:,.0f} packets/s, p50 {figures['p50_ms']:.0f} ms, "
        f"p95 {figures['p95_ms']:.0f} ms, p99 {figures['p99_ms']:.0f} ms, "
        f"{figures['cpu_s_per_packet'] * 1000:.2f} ms CPU a packet, "
        f"peak RSS {figures['peak_rss_mb']} MB"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
