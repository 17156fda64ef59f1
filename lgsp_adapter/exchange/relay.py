"""The outbox relay: puts accepted deliveries on the bus, oldest first.

Ingest only writes to the store (so a 202 never waits for the bus); the relay publishes what is
there. Were the process to die between publishing and recording it, the delivery would be
published again after the restart, and the receiver's record of delivered packets keeps the
agency system from getting it twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol
from uuid import UUID

from lgsp_adapter.audit import AuditEntry, AuditEvent, log_event
from lgsp_adapter.bus.contract import Outgoing, Published
from lgsp_adapter.registry.bridges import Bridge
from lgsp_adapter.store import DeliveryState, Store, StoredPacket, entry_for

log = logging.getLogger(__name__)
# A batch's payloads are in memory together, read from the store and framed for the bus: a
# backlog of 5 MB documents would otherwise be read a hundred at a time. A larger packet goes
# in a batch of its own.
BATCH_BYTES = 16 * 2**20

# A delivery ended: tell whoever waits on it (the sender's system, the metrics).
OnFinal = Callable[[UUID, str], Awaitable[None]]


class Publisher(Protocol):
    """A bus, as far as the relay needs one."""

    @property
    def connected(self) -> bool:
        """Whether it can take packets now."""
        ...

    async def publish(self, deliveries: list[Outgoing]) -> Published:
        """Put deliveries on the bus and record those it took; each entry records one."""
        ...


async def set_aside(
    store: Store,
    outgoing: Outgoing,
    outcome: str,
    detail: str,
    on_final: OnFinal | None,
) -> None:
    """Record a delivery the bus would not take as returned and dead-lettered, and tell the
    sender: a packet is never dropped without a word."""
    packet, recipient, entry = outgoing
    returned = entry.model_copy(
        update={"event": AuditEvent.RETURNED, "outcome": outcome, "detail": detail}
    )
    await store.update_delivery(
        packet.id, recipient, DeliveryState.DEAD_LETTERED, entries=[returned], detail=detail
    )
    log_event(log, returned, logging.WARNING)
    if on_final is not None:
        await on_final(packet.id, recipient)


class Relay:
    """Moves deliveries from the outbox to the bus."""

    def __init__(
        self,
        *,
        store: Store,
        bus: Publisher,
        on_final: OnFinal | None = None,
        batch: int = 100,
        batch_bytes: int = BATCH_BYTES,
        bridge_for: Callable[[str], Bridge | None] = lambda code: None,
    ) -> None:
        self._store = store
        self._bridge_for = bridge_for  # the bridge a recipient's code lies across, if any
        self._bus = bus
        self._on_final = on_final  # a delivery the bus would not take has ended
        self._batch = batch
        self._batch_bytes = batch_bytes
        self.wake = asyncio.Event()

    async def run(self, stopping: asyncio.Event, idle_poll_s: float = 1.0) -> None:
        """Publish until ``stopping`` is set; ``wake`` cuts the wait short after an ingest."""
        while not stopping.is_set():
            try:
                published = await self.publish_pending()
            except Exception:
                # The bus is away (a broker restart, dropped connections): what was not
                # published stays in the outbox and goes out when the bus is back.
                log.warning("publishing failed; retrying shortly", exc_info=True)
                published = 0
            if published:
                continue
            self.wake.clear()
            waiters = [
                asyncio.ensure_future(self.wake.wait()),
                asyncio.ensure_future(stopping.wait()),
            ]
            try:
                await asyncio.wait(
                    waiters, timeout=idle_poll_s, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiter in waiters:
                    waiter.cancel()

    def _entry(self, packet: StoredPacket, recipient: str) -> AuditEntry:
        """Published on this bus, or forwarded towards another across a bridge."""
        bridge = self._bridge_for(recipient)
        if bridge is None:
            return entry_for(packet, AuditEvent.PUBLISHED, recipient=recipient, outcome="ok")
        detail = f"towards {bridge.description}, in the queue its shovel carries there"
        return entry_for(
            packet, AuditEvent.FORWARDED, recipient=recipient, outcome="ok", detail=detail
        )

    async def publish_pending(self) -> int:
        """Publish one batch from the outbox; returns how many. Only the replica holding the
        relay role publishes (two would put every packet on the bus twice); the others' outbox
        is the same table, and the holder is woken when they fill it."""
        if not self._bus.connected:
            # Another replica's bus may be up: it relays meanwhile.
            await self._store.release_role("relay")
            return 0
        if not await self._store.take_role("relay"):
            return 0
        pending = await self._store.outbox(self._batch)
        packets: dict[UUID, StoredPacket | None] = {}  # a packet to n recipients is read once
        batch: list[Outgoing] = []
        size = 0
        for packet_id, recipient, packet_size in pending:
            if packet_id not in packets:
                if batch and size + packet_size > self._batch_bytes:
                    break  # the rest wait for the next batch, a moment later
                packets[packet_id] = await self._store.packet(packet_id)
                size += packet_size
            packet = packets[packet_id]
            if packet is None:  # cannot happen: deliveries reference their packet
                continue
            entry = self._entry(packet, recipient)
            batch.append((packet, recipient, entry))
        if not batch:
            return 0
        published = await self._bus.publish(batch)
        refused = {(r.outgoing[0].id, r.outgoing[1]) for r in published.refused}
        if published.failure is None:
            for packet, recipient, entry in batch:
                if (packet.id, recipient) not in refused:
                    log_event(log, entry)
        # Never dropped without a word: recorded as returned and dead-lettered, sender told.
        for refusal in published.refused:
            await set_aside(
                self._store, refusal.outgoing, refusal.outcome, refusal.why, self._on_final
            )
        if published.failure is not None:
            raise published.failure
        return len(batch)
