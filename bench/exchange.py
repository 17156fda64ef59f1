"""End-to-end benchmark of the exchange on the embedded bus.

A daemon (`lgsp-adapter serve`, its own process) serves a sender and a recipient agency; the
recipient's system is an aiohttp server in this process that answers 200 and notes when each
packet arrives. Concurrent submitters POST 2 KB edXML documents for a while; the benchmark
reports delivered packets per second and the submit-to-delivered latency (p50, p99), with
durability on (SQLite synchronous=FULL) and the audit log written for every step.

    python bench/exchange.py [--seconds 10] [--submitters 50] [--json FILE]

The RabbitMQ figures and the baseline ratio come with the RabbitMQ bus (issue 8 asks for both).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from lgsp_adapter.attachment import Attachment
from lgsp_adapter.edxml_codec import render_edxml
from lgsp_adapter.edxml_model import (
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
                    document_id=f"{SENDER},2026/11/20,1/UBND-VP",
                    subject="Văn bản thử tải",
                )
            ),
            body=Body(manifest=Manifest(references=[ManifestReference(content_id="cid:1")])),
        ),
        attachments=[attachment],
    )
    return render_edxml(packet)


def config(folder: Path, inbox: str) -> Path:
    path = folder / "bench.toml"
    path.write_text(
        f"""
[http]
port = 0
[store]
path = "{folder / "store.sqlite3"}"
[bus]
prefetch = 64
[[agencies]]
code = "{SENDER}"
name = "sender"
[agencies.endpoint]
url = "{inbox}"
[[agencies]]
code = "{RECIPIENT}"
name = "recipient"
[agencies.endpoint]
url = "{inbox}"
[[clients]]
name = "bench"
token = "{TOKEN}"
agencies = ["{SENDER}"]
"""
    )
    return path


async def run(seconds: float, submitters: int) -> dict[str, float]:
    arrived: dict[str, float] = {}

    async def inbox(request: web.Request) -> web.Response:
        await request.read()
        arrived[request.headers["X-LGSP-Packet-Id"]] = time.monotonic()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/inbox", inbox)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    inbox_url = f"http://127.0.0.1:{runner.addresses[0][1]}/inbox"
    with tempfile.TemporaryDirectory() as folder:
        daemon = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lgsp_adapter",
            "serve",
            "--config",
            str(config(Path(folder), inbox_url)),
            stderr=asyncio.subprocess.PIPE,
        )
        assert daemon.stderr is not None
        url = ""
        while not url:
            line = (await daemon.stderr.readline()).decode()
            if not line:
                raise RuntimeError("the daemon did not start")
            if " on http://" in line:
                url = line.split(" on ", 1)[1].split()[0]
        drain = asyncio.create_task(_drain(daemon.stderr))
        body = document()
        submitted: dict[str, float] = {}
        stop_at = time.monotonic() + seconds

        async def submitter(session: aiohttp.ClientSession) -> None:
            headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/xml"}
            while time.monotonic() < stop_at:
                started = time.monotonic()
                async with session.post(f"{url}/v1/packets", data=body, headers=headers) as answer:
                    packet_id = (await answer.json())["packet_id"]
                submitted[packet_id] = started

        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=submitters)
        ) as session:
            began = time.monotonic()
            await asyncio.gather(*(submitter(session) for _ in range(submitters)))
            while len(arrived) < len(submitted) and time.monotonic() < stop_at + 30:
                await asyncio.sleep(0.05)
            elapsed = max(arrived.values(), default=began) - began
        daemon.terminate()
        await daemon.wait()
        drain.cancel()
    await runner.cleanup()
    latencies = sorted(arrived[p] - submitted[p] for p in submitted if p in arrived)
    return {
        "submitted": len(submitted),
        "delivered": len(latencies),
        "packets_per_s": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else 0.0,
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else 0.0,
        "document_bytes": len(body),
    }


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--submitters", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures = asyncio.run(run(args.seconds, args.submitters))
    print(
        f"embedded bus, {figures['document_bytes']:,} B documents, {args.submitters} submitters: "
        f"{figures['delivered']:,}/{figures['submitted']:,} delivered, "
        f"{figures['packets_per_s']:,.0f} packets/s, p50 {figures['p50_ms']:.0f} ms, "
        f"p99 {figures['p99_ms']:.0f} ms"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
