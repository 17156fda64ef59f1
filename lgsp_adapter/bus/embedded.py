"""The embedded bus: the store is the queue, so nothing accepted is lost in a crash.

Publishing queues a delivery and marks it published in one transaction. The consumer leases
due deliveries to the agencies this daemon serves and asks the pipeline's handler for each
one's settlement (delivered, retry later, given up). Its acknowledgement is the store
transaction that records that settlement with its audit entries and, for a retry, when the
delivery is due again: here the queue and the record are one, so they cannot disagree. One
process owns the embedded bus, so a lease never expires while it runs (a slow delivery is never
handed to a second worker); leases left by a process that died are voided at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from lgsp_adapter.audit import AuditEntry
from lgsp_adapter.bus.contract import Handler, Outgoing, Published, Refused
from lgsp_adapter.store import Store
from lgsp_adapter.store.unavailable import until_stored

log = logging.getLogger(__name__)

STORE_WAIT_S = 1.0  # how long consuming waits for a store that did not answer
PRUNE_S = 60.0  # how often the codes of ranges with nothing queued are dropped


class EmbeddedBus:
    """Publishes to and consumes from the queue kept in the store."""

    def __init__(
        self,
        *,
        store: Store,
        served: list[str],
        prefetch: int,
        lease_s: float = 10 * 365 * 86400.0,
        failure_retry_s: float = 30.0,
        idle_poll_s: float = 1.0,
        on_final: Callable[[UUID, str], Awaitable[None]] | None = None,
        routed: Callable[[str], bool] = lambda code: False,
    ) -> None:
        self._store = store
        self._served = served
        # Codes in a route's range: not listed, so those with deliveries queued are gathered.
        self._routed = routed
        self._route_codes: set[str] = set()  # and those queued before: read at the start
        self._pruned_at = time.monotonic()
        self._prefetch = prefetch
        self._lease_s = lease_s
        self._failure_retry_s = failure_retry_s
        self._idle_poll_s = idle_poll_s
        self._wake = asyncio.Event()
        self._on_final = on_final  # sender and recipient share this store: tell the sender

    @property
    def connected(self) -> bool:
        """The embedded bus is the store: there whenever the store is."""
        return True

    async def serve(self, codes: list[str]) -> None:
        """Serve these agencies from now on (the registry changed): new ones' deliveries are
        leased at once, removed ones' wait in the store until they are registered again."""
        self._served = list(codes)
        self._wake.set()

    async def publish(self, deliveries: list[Outgoing]) -> Published:
        """Queue deliveries in one transaction. One to an agency removed from the registry
        since the packet was accepted waits in the queue, as it would in its RabbitMQ queue,
        until the agency is registered again; one to an agency this daemon never served comes
        back as returned (the embedded bus reaches no other daemon)."""
        routable = []
        refused = []
        removed: dict[str, object] | None = None
        for outgoing in deliveries:
            packet, recipient, entry = outgoing
            if self._routed(recipient):
                self._note_routed(recipient)
                routable.append((packet.id, recipient, [entry]))
                continue
            if recipient not in self._served and removed is None:
                removed = dict(await self._store.registry.removed())
            if recipient in self._served or (removed is not None and recipient in removed):
                routable.append((packet.id, recipient, [entry]))
            else:
                why = "the embedded bus reaches only agencies served by this daemon"
                refused.append(Refused(outgoing, "bus.unroutable", why))
        if routable:
            await self._store.enqueue_many(routable)
            self._wake.set()
        return Published(refused)

    async def requeue(self, packet_id: UUID, recipient: str, entries: list[AuditEntry]) -> None:
        """Put a delivery back on the bus for this daemon's consumer (a held packet whose agency
        now takes pushes)."""
        if self._routed(recipient):
            self._note_routed(recipient)
        await self._store.enqueue(packet_id, recipient, entries)
        self._wake.set()

    def _note_routed(self, code: str) -> None:
        self._route_codes.add(code)

    async def _prune(self) -> None:
        """Once a minute, drop the codes of a range with nothing queued any more, so that the
        list leased by does not grow with every code a range ever had a packet for."""
        if time.monotonic() - self._pruned_at < PRUNE_S or not self._route_codes:
            return
        self._pruned_at = time.monotonic()
        known = set(self._route_codes)
        queued = {code for code in await self._store.queued_recipients() if self._routed(code)}
        self._route_codes = queued | (self._route_codes - known)  # and those noted meanwhile

    def _recipients(self) -> list[str]:
        """Whose deliveries this bus leases: the agencies served by name, and the codes of a
        route's range that have deliveries queued."""
        return [*self._served, *sorted(self._route_codes)]

    async def consume(self, handler: Handler, stopping: asyncio.Event) -> None:
        """Deliver due deliveries until ``stopping`` is set, then finish those in hand."""
        # One process owns the embedded bus: leases left by a killed predecessor are void.
        released = await self._store.release_leases()
        if released:
            log.warning(
                "%d deliveries were in hand when the daemon last stopped; due again", released
            )
        queued = await self._store.queued_recipients()
        self._route_codes |= {code for code in queued if self._routed(code)}
        in_hand: set[asyncio.Task[None]] = set()
        while not stopping.is_set():
            try:
                await self._round(handler, stopping, in_hand)
            except Exception:
                # The store is away (PostgreSQL restarting): the queue is in it, nothing is
                # lost; consuming resumes when it answers.
                log.warning("the store is unavailable; consuming waits", exc_info=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), STORE_WAIT_S)
        if in_hand:
            await asyncio.gather(*in_hand, return_exceptions=True)

    async def _round(
        self, handler: Handler, stopping: asyncio.Event, in_hand: set[asyncio.Task[None]]
    ) -> None:
        """Lease what is due and there is room for, or wait for something to change."""
        # Asked each round: on a shared database the role can be lost with the session, and
        # another daemon's embedded bus must not lease the same queue meanwhile.
        if not await self._store.take_role("embedded-bus"):
            log.error("another daemon runs the embedded bus on this store; waiting")
            await self._wait(stopping, in_hand)
            return
        await self._prune()
        room = self._prefetch - len(in_hand)
        leased = await self._store.lease(self._recipients(), limit=room, lease_s=self._lease_s)
        for packet_id, recipient in leased:
            task = asyncio.create_task(self._settle(handler, packet_id, recipient))
            in_hand.add(task)
            task.add_done_callback(in_hand.discard)
        if leased and len(in_hand) < self._prefetch:
            return
        await self._wait(stopping, in_hand)

    async def _wait(self, stopping: asyncio.Event, in_hand: set[asyncio.Task[None]]) -> None:
        due_in = await self._store.next_due_in(self._recipients())
        timeout = self._idle_poll_s if due_in is None else min(due_in, self._idle_poll_s)
        self._wake.clear()
        waiters: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(stopping.wait()),
        ]
        if in_hand and len(in_hand) >= self._prefetch:
            waiters.append(asyncio.ensure_future(asyncio.wait(in_hand)))
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _settle(self, handler: Handler, packet_id: UUID, recipient: str) -> None:
        try:
            packet = await self._store.packet(packet_id)
            if packet is None:  # cannot happen: the queue references a delivery, it a packet
                raise KeyError(f"no packet {packet_id} in the store")
            settlement = await handler(packet, recipient)
        except Exception:
            log.exception(
                "%s %s could not be handled; due again in %g s",
                packet_id,
                recipient,
                self._failure_retry_s,
            )
            await self._store.release(packet_id, recipient, self._failure_retry_s)
            return
        await until_stored(
            lambda: self._store.settle(
                packet_id,
                recipient,
                settlement.state,
                entries=settlement.entries,
                detail=settlement.detail,
                attempted=settlement.attempted,
                retry_in_s=settlement.retry_in_s,
            ),
            f"{packet_id} {recipient}: recording {settlement.state}",
        )
        self._wake.set()  # room for one more
        if settlement.state.final and self._on_final is not None:
            await self._on_final(packet_id, recipient)
