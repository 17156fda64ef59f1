"""The outbox relay: batches bounded in deliveries and in bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from lgsp_adapter.bus.contract import Outgoing, Published
from lgsp_adapter.bus.embedded import EmbeddedBus
from lgsp_adapter.exchange.relay import Relay
from lgsp_adapter.store import DeliveryState, StoredPacket
from lgsp_adapter.store.sqlite import SqliteStore
from tests.test_store import RECIPIENTS, packet, received


class CountingBus(EmbeddedBus):
    """The embedded bus, noting what each batch held."""

    def __init__(self, store: SqliteStore) -> None:
        super().__init__(store=store, served=RECIPIENTS, prefetch=1)
        self.batches: list[list[Outgoing]] = []

    async def publish(self, deliveries: list[Outgoing]) -> Published:
        self.batches.append(deliveries)
        return await super().publish(deliveries)


async def published(
    store: SqliteStore, packets: list[StoredPacket], batch_bytes: int
) -> list[list[Outgoing]]:
    """Accept ``packets``, relay until the outbox is empty, and return each batch published."""
    for p in packets:
        await store.accept(p, [received(p)])
    bus = CountingBus(store)
    relay = Relay(store=store, bus=bus, batch_bytes=batch_bytes)
    while await relay.publish_pending():
        pass
    assert await store.outbox(100) == []
    return bus.batches


@pytest.mark.asyncio
async def test_a_backlog_of_large_packets_is_published_a_few_megabytes_at_a_time(
    tmp_path: Path,
) -> None:
    # Each batch's payloads are in memory at once: a backlog of 5 MB documents read a hundred
    # at a time took a sending daemon past 400 MB.
    async with await SqliteStore.open(tmp_path / "s.sqlite3") as store:
        packets = [packet(b"<edXML>" + bytes([65 + n]) * 2**20 + b"</edXML>") for n in range(5)]
        batches = await published(store, packets, batch_bytes=5 * 2**19)  # 2.5 MB
        assert [len({p.id for p, _, _ in batch}) for batch in batches] == [2, 2, 1]
        # A packet's deliveries travel together, and each goes out once.
        assert sorted((p.id, r) for batch in batches for p, r, _ in batch) == sorted(
            (p.id, r) for p in packets for r in RECIPIENTS
        )
        for p in packets:
            states = {d.state for d in await store.deliveries(p.id)}
            assert states == {DeliveryState.PUBLISHED}


@pytest.mark.asyncio
async def test_a_packet_larger_than_the_budget_goes_in_a_batch_of_its_own(
    tmp_path: Path,
) -> None:
    async with await SqliteStore.open(tmp_path / "s.sqlite3") as store:
        small = packet(b"<edXML>" + b"s" * 2**20 + b"</edXML>")
        large = packet(b"<edXML>" + b"L" * 3 * 2**20 + b"</edXML>")
        batches = await published(store, [small, large], batch_bytes=2 * 2**20)
        # Not the small one and the large one together (4 MB on a 2 MB budget).
        assert [{p.id for p, _, _ in batch} for batch in batches] == [{small.id}, {large.id}]
