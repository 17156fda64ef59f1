"""The embedded bus on its own: what it does when a handler fails or is slow."""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import UUID

import pytest

from lgsp_adapter.audit import AuditEntry, AuditEvent
from lgsp_adapter.bus.contract import Settlement
from lgsp_adapter.bus.embedded import EmbeddedBus
from lgsp_adapter.store import DeliveryState, StoredPacket
from lgsp_adapter.store.sqlite import SqliteStore
from tests.test_store import RECIPIENTS, packet, received


async def run_until(bus: EmbeddedBus, handler: object, done: asyncio.Event) -> None:
    stopping = asyncio.Event()
    consumer = asyncio.create_task(bus.consume(handler, stopping))  # type: ignore[arg-type]
    await asyncio.wait_for(done.wait(), timeout=10)
    stopping.set()
    await asyncio.wait_for(consumer, timeout=10)


@pytest.mark.asyncio
async def test_a_handler_that_fails_gets_the_delivery_again(tmp_path: Path) -> None:
    async with await SqliteStore.open(tmp_path / "s.db") as store:
        p = packet()
        await store.accept(p, [received(p)])
        bus = EmbeddedBus(
            store=store, served=RECIPIENTS[:1], prefetch=4, failure_retry_s=0.1, idle_poll_s=0.05
        )
        await bus.publish(
            [(p, RECIPIENTS[0], AuditEntry(event=AuditEvent.PUBLISHED, packet_id=p.id))]
        )
        calls: list[UUID] = []
        done = asyncio.Event()

        async def handler(packet: StoredPacket, recipient: str) -> Settlement:
            calls.append(packet.id)
            if len(calls) == 1:
                raise RuntimeError("a bug in the handler")
            done.set()
            return Settlement(DeliveryState.DELIVERED, attempted=True)

        await run_until(bus, handler, done)
        assert calls == [p.id, p.id]
        (record, *_) = await store.deliveries(p.id)
        assert record.state is DeliveryState.DELIVERED


@pytest.mark.asyncio
async def test_a_slow_delivery_is_never_handed_to_a_second_worker(tmp_path: Path) -> None:
    async with await SqliteStore.open(tmp_path / "s.db") as store:
        p = packet()
        await store.accept(p, [received(p)])
        bus = EmbeddedBus(store=store, served=RECIPIENTS[:1], prefetch=4, idle_poll_s=0.05)
        await bus.publish(
            [(p, RECIPIENTS[0], AuditEntry(event=AuditEvent.PUBLISHED, packet_id=p.id))]
        )
        calls: list[UUID] = []
        done = asyncio.Event()

        async def handler(packet: StoredPacket, recipient: str) -> Settlement:
            calls.append(packet.id)
            await asyncio.sleep(0.5)  # while the consumer keeps polling for due deliveries
            done.set()
            return Settlement(DeliveryState.DELIVERED, attempted=True)

        await run_until(bus, handler, done)
        assert calls == [p.id]
