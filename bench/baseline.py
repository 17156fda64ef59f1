"""The raw ceiling of the bus on this machine: plain aio-pika moving persistent, confirmed,
acknowledged messages through one RabbitMQ quorum queue, as a well-written client would
(a window of outstanding confirms; a concurrent consumer with manual acknowledgements and a
prefetch). Whatever the daemon adds — HTTP, validation, the audit log, delivery — is measured
against this figure, taken in the same run, so a busy machine does not flatter anyone.

    python bench/baseline.py [--seconds 10] [--size 2048] [--window 256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
from proc import CpuMeter, broker_pid  # bench/: scripts, not a package

BROKER = os.environ.get("LGSP_BENCH_BROKER", "amqp://guest:guest@127.0.0.1:5672/")


async def baseline(
    seconds: float, size: int = 2048, window: int = 256, prefetch: int = 256
) -> dict[str, Any]:
    """Messages per second published (confirmed) and consumed (acknowledged) end to end."""
    name = f"lgsp.bench.baseline.{uuid.uuid4().hex[:8]}"
    publishing = await aio_pika.connect(BROKER)
    consuming = await aio_pika.connect(BROKER)
    consumed = 0
    all_in = asyncio.Event()
    published = 0
    publishing_done = False
    try:
        channel = await publishing.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        reader = await consuming.channel()
        await reader.set_qos(prefetch_count=prefetch)
        read_queue = await reader.get_queue(name)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal consumed
            await message.ack()
            consumed += 1
            if publishing_done and consumed >= published:
                all_in.set()

        await read_queue.consume(on_message)
        body = os.urandom(size)
        outstanding = asyncio.Semaphore(window)
        pending: set[asyncio.Task[None]] = set()

        async def publish_one() -> None:
            nonlocal published
            try:
                await channel.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=name,
                )
                published += 1
            finally:
                outstanding.release()

        meter = CpuMeter({"broker": broker_pid(), "client": os.getpid()})
        meter.start()
        began = time.monotonic()
        stop_at = began + seconds
        while time.monotonic() < stop_at:
            await outstanding.acquire()
            task = asyncio.create_task(publish_one())
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        publishing_done = True
        if consumed >= published:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), timeout=120)
        elapsed = time.monotonic() - began
        used = meter.stop()
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await consuming.close()
        await publishing.close()
    return {
        "messages": consumed,
        "messages_per_s": consumed / elapsed,
        "message_bytes": size,
        "confirm_window": window,
        "prefetch": prefetch,
        # The publisher and consumer are one process here, as the daemons are two processes.
        "cpu_ms_per_message_by_part": {
            name: round(1000 * seconds / consumed, 3) if consumed else 0.0
            for name, seconds in used.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures = asyncio.run(baseline(args.seconds, args.size, args.window))
    print(
        f"raw aio-pika, {args.size:,} B persistent messages, one quorum queue, "
        f"{args.window} confirms in flight: {figures['messages_per_s']:,.0f} messages/s"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
