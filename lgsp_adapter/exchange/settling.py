"""Settling what a broker delivers: believe it or refuse it, keep it, deliver it, park a retry or
a dead letter, record the outcome, send the receipt. The bus acknowledges afterwards.

The broker vouches only for the publishing account; everything else a message says is checked
against its content, the directory and the store before it is believed (``_forged``). A
delivery is settled once per process and once across replicas sharing the store: a copy
redelivered while another is still at work waits for it, then finds the outcome recorded and
is not posted again. Parking comes before recording: a crash between them costs at most one
extra attempt, and after the record a redelivered original is recognised as stale.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from uuid import UUID

from lgsp_adapter.audit import AuditEntry, AuditEvent, log_event
from lgsp_adapter.bus.contract import (
    Arrival,
    Carrier,
    Handler,
    Receipt,
    Settlement,
    Stray,
    Verdict,
)
from lgsp_adapter.bus.topology import NOT_SERVED_WAIT_S
from lgsp_adapter.errors import FatalError, LgspError
from lgsp_adapter.exchange.relay import OnFinal
from lgsp_adapter.exchange.strays import settle_stray
from lgsp_adapter.packets.reader import read_packet_off_loop, recipients_of, sender_of
from lgsp_adapter.packets.safe_xml import XmlLimits
from lgsp_adapter.registry.directory import Directory
from lgsp_adapter.registry.routes import PREFIX as ROUTE_PREFIX
from lgsp_adapter.store import (
    DeliveryRecord,
    DeliveryState,
    PacketFacts,
    Store,
    StoredPacket,
    entry_for,
)
from lgsp_adapter.store.records import PacketIdTaken
from lgsp_adapter.store.unavailable import until_stored

log = logging.getLogger(__name__)


class Settler:
    """The pipeline behind a broker's consumer (``bus.contract.ArrivalHandler``)."""

    def __init__(
        self,
        *,
        store: Store,
        directory: Directory,
        carrier: Carrier,
        handler: Handler,
        served: list[str],
        limits: XmlLimits,
        on_final: OnFinal | None = None,
    ) -> None:
        self._store = store
        self._directory = directory
        self._carrier = carrier
        self._handler = handler  # decides a delivery's outcome (``Receiver.handle``)
        self._served = set(served)
        self._limits = limits
        self._on_final = on_final  # a receipt came: tell the sending agency's system
        # One delivery handled at a time: a publish whose confirm was lost in a reconnect is
        # published again, and both copies may arrive together.
        self._handling: dict[tuple[UUID, str], tuple[asyncio.Lock, int]] = {}

    async def serve(self, codes: list[str]) -> None:
        """Serve these agencies from now on (the registry changed): told early, as the bus
        is, so a packet for an agency just registered is not parked as for one removed."""
        self._served = set(codes)

    def _serves(self, code: str) -> bool:
        """Whether this daemon serves ``code``: by name, or in a route's range."""
        return code in self._served or self._directory.route_for(code) is not None

    async def take(self, arrival: Arrival) -> Verdict:
        """Believe, keep and settle one delivery; ``REJECT`` one that must not be believed."""
        packet, recipient = arrival.packet, arrival.recipient
        forged = await self._forged(arrival)
        if forged is not None:
            await self._refuse(arrival, forged)
            return Verdict.REJECT
        try:
            first = self._first_entry(arrival)
            if self._serves(recipient):
                await self._settle(packet, recipient, arrival.attempt, first)
            else:
                await self._wait_for_service(packet, recipient, arrival.attempt, first)
        except PacketIdTaken:
            # Another packet took this id between the check and the store's write: the store
            # refused this one in the same transaction, so nothing of it was kept.
            await self._refuse(arrival, "it reuses the id of another packet")
            return Verdict.REJECT
        return Verdict.ACK

    def _first_entry(self, arrival: Arrival) -> AuditEntry:
        """What this log says when the packet first comes: received from the bus, or arrived
        from another bus across a bridge (which, and through which shovels)."""
        packet, recipient = arrival.packet, arrival.recipient
        bridge = self._directory.bridge_arriving_as(arrival.publisher)
        if bridge is None:
            return _received(packet, recipient)
        path = f" through {', '.join(arrival.hops)}" if arrival.hops else ""
        detail = f"from {bridge.description}{path}"
        return entry_for(
            packet, AuditEvent.ARRIVED, recipient=recipient, outcome="ok", detail=detail
        )

    async def _wait_for_service(
        self, packet: StoredPacket, recipient: str, attempt: int, first: AuditEntry
    ) -> None:
        """Removed from the registry while this message was on its way: it waits in the
        agency's queue (through a short retry queue, so it neither spins nor counts as a
        delivery). Kept first: the copy goes out under this daemon's account, and the store is
        what vouches for it when it comes back."""
        await self._store.receive(packet, recipient, [first])
        await self._carrier.park_retry(packet, recipient, NOT_SERVED_WAIT_S, attempt)

    async def _forged(self, arrival: Arrival) -> str | None:
        """Why a message must not be believed, or None."""
        packet, recipient = arrival.packet, arrival.recipient
        if self._directory.queue_key(recipient) != arrival.queue_code and not (
            arrival.queue_code.startswith(ROUTE_PREFIX) and self._serves(recipient)
        ):
            # A route's queue may hold a copy for an agency served by name now (the route was
            # narrowed while it waited): delivered once like any redelivery, not refused.
            return f"addressed to {recipient} but in the queue of {arrival.queue_code}"
        if hashlib.sha256(packet.payload).hexdigest() != packet.sha256:
            return "the payload does not match its digest"
        own = self._carrier.user
        across = self._directory.overreach(arrival.publisher, packet.sender)
        if across is not None:
            return (
                f"from {packet.sender}, published by {arrival.publisher!r}, the account of bus "
                f"{across.name}, which speaks only for its bridge's codes"
            )
        ours = self._serves(packet.sender)
        expected = own if ours else self._directory.bus_user(packet.sender)
        # Nobody vouches for a sender no rule names: any account that may write the exchange
        # could claim to be it.
        stranger = not ours and not self._directory.knows_sender(packet.sender)
        if stranger or (expected is not None and arrival.publisher != expected):
            # Our own retry copy of a packet we took in (and checked) before: the broker
            # vouches it is ours, and the store that it is the packet we checked.
            kept = await self._store.facts(packet.id) if arrival.publisher == own else None
            if kept is None or kept.sha256 != packet.sha256:
                if stranger:
                    return (
                        f"from {packet.sender}, which this daemon neither serves nor knows: "
                        "list it in [[known_agencies]] or bind its range to a broker account "
                        "in [[bus_senders]]"
                    )
                return (
                    f"published by {arrival.publisher!r}, not by {expected!r} "
                    f"who serves {packet.sender}"
                )
        try:
            read = await read_packet_off_loop(
                packet.payload, content_type=packet.content_type, limits=self._limits
            )
        except LgspError as exc:
            return f"the content is not a packet we read: {exc.code}"
        if (
            read.kind != packet.kind
            or sender_of(read.packet) != packet.sender
            or recipient not in recipients_of(read.packet)
        ):
            return "the headers disagree with the content (kind, sender or recipient)"
        known = await self._store.facts(packet.id)
        if known is not None and known.sha256 != packet.sha256:
            return "it reuses the id of another packet"
        return None

    async def _refuse(self, arrival: Arrival, why: str) -> None:
        """Say in the audit log why a message is dead-lettered unbelieved."""
        packet = arrival.packet
        entry = AuditEntry(
            event=AuditEvent.REJECTED,
            sender=packet.sender,
            recipient=arrival.recipient,
            kind=packet.kind,
            payload_sha256=hashlib.sha256(packet.payload).hexdigest(),
            outcome="bus.forged",
            detail=f"message {packet.id}: {why}"[:500],
        )
        await self._store.append([entry])
        log_event(log, entry, logging.WARNING)

    async def _settle(
        self, packet: StoredPacket, recipient: str, attempt: int, first: AuditEntry
    ) -> None:
        key = (packet.id, recipient)
        lock, users = self._handling.get(key, (asyncio.Lock(), 0))
        self._handling[key] = (lock, users + 1)
        try:
            # In this process, then against replicas sharing the store: a copy redelivered to
            # one while another still works on the first waits, and then finds it recorded.
            async with lock, self._store.exclusive(packet.id, recipient):
                await self._settle_once(packet, recipient, attempt, first)
        finally:
            lock, users = self._handling[key]
            if users == 1:
                del self._handling[key]
            else:
                self._handling[key] = (lock, users - 1)

    async def _settle_once(
        self, packet: StoredPacket, recipient: str, attempt: int, first: AuditEntry
    ) -> None:
        await self._store.receive(packet, recipient, [first])
        record = {d.recipient: d for d in await self._store.deliveries(packet.id)}[recipient]
        if not record.state.final and attempt < record.since_replay:
            # A copy from before a recorded attempt (its ack was lost in a crash); the retry
            # copy parked for the later attempt is the one that counts.
            log.info("%s %s: stale copy for attempt %d; dropped", packet.id, recipient, attempt)
            return
        settlement = await self._handler(packet, recipient)
        settlement = await self._park(packet, recipient, settlement, record.since_replay)
        # The agency system has answered: its answer is recorded whatever the store's moods
        # (redone from the start, the delivery would be posted again).
        record = await until_stored(
            lambda: self._store.update_delivery(
                packet.id,
                recipient,
                settlement.state,
                entries=settlement.entries,
                detail=settlement.detail,
                attempted=settlement.attempted,
            ),
            f"{packet.id} {recipient}: recording {settlement.state}",
        )
        if settlement.state.final:  # again on a redelivery: the first receipt may be lost
            await self._carrier.send_receipt(_receipt(packet, record))

    async def _park(
        self, packet: StoredPacket, recipient: str, settlement: Settlement, attempts: int
    ) -> Settlement:
        """Put the copy where the settlement says it waits: a retry queue, or the dead
        letters; returns the settlement as it stands after (a retry that cannot wait on the
        bus is set aside)."""
        if settlement.retry_in_s is not None:
            attempt = attempts + (1 if settlement.attempted else 0)
            try:
                await self._carrier.park_retry(packet, recipient, settlement.retry_in_s, attempt)
            except FatalError as exc:
                # bus.declare is false and nobody declared that retry queue: the delivery is
                # set aside for an operator (replayed once `lgsp-adapter declare` has run),
                # not handed back to the broker to be posted again and again.
                settlement = _set_aside(packet, recipient, settlement, exc)
            else:
                return settlement
        if settlement.state in (DeliveryState.REFUSED, DeliveryState.DEAD_LETTERED):
            reason = settlement.detail or str(settlement.state)
            await self._carrier.park_dead(packet, recipient, reason)
        return settlement

    async def announce_final(self, packet_id: UUID, recipient: str) -> None:
        """A delivery ended outside the consumer (a pull inbox's acknowledgement, a dead
        letter given up): send the sender's daemon its receipt, as for one the consumer ended."""
        packet = await self._store.facts(packet_id)
        records = {d.recipient: d for d in await self._store.deliveries(packet_id)}
        record = records.get(recipient)
        if packet is None or record is None or not record.state.final:
            return
        await self._carrier.send_receipt(_receipt(packet, record))

    async def take_stray(self, stray: Stray) -> Verdict:
        """Record what another bus sent for a code nothing here takes, refused back to its
        sender (``strays``)."""
        return await settle_stray(self._store, self._carrier, self._directory, stray)

    async def take_receipt(self, receipt: Receipt, publisher: str | None) -> Verdict:
        """Record what the recipient's daemon says became of a packet sent from here, then
        tell the sending agency's system; a receipt that must not be believed is rejected."""
        packet = await self._store.facts(receipt.packet_id)
        recipients = {d.recipient for d in await self._store.deliveries(receipt.packet_id)}
        expected = self._directory.bus_user(receipt.recipient)
        why = None
        if packet is None or not self._serves(packet.sender):
            why = "for a packet this daemon did not send"
        elif receipt.recipient not in recipients:
            why = f"for a recipient the packet does not have ({receipt.recipient})"
        elif not receipt.state.final:
            why = f"with a state that is not an outcome ({receipt.state})"
        elif expected is not None and publisher != expected:
            why = f"published by {publisher!r}, not by {expected!r} who serves {receipt.recipient}"
        elif across := self._directory.overreach(publisher, receipt.recipient):
            why = f"about {receipt.recipient}, from bus {across.name}'s account"
        if why is not None or packet is None:
            log.warning("a receipt %s; dead-lettered", why)
            return Verdict.REJECT
        entry = entry_for(
            packet,
            AuditEvent.RECEIPT,
            recipient=receipt.recipient,
            outcome=receipt.state.value,
            detail=receipt.detail,
        )
        await self._store.update_delivery(
            receipt.packet_id,
            receipt.recipient,
            receipt.state,
            entries=[entry],
            detail=receipt.detail,
            attempts=receipt.attempts,  # the recipient's daemon made them; here, none
        )
        log_event(log, entry)
        if self._on_final is not None:
            await self._on_final(receipt.packet_id, receipt.recipient)
        return Verdict.ACK


def _received(packet: StoredPacket, recipient: str) -> AuditEntry:
    return entry_for(
        packet, AuditEvent.RECEIVED, recipient=recipient, outcome="ok", detail="from the bus"
    )


def _receipt(packet: PacketFacts, record: DeliveryRecord) -> Receipt:
    return Receipt(
        packet_id=packet.id,
        sender=packet.sender,
        recipient=record.recipient,
        state=record.state,
        attempts=record.attempts,
        detail=record.detail,
    )


def _set_aside(
    packet: StoredPacket, recipient: str, settlement: Settlement, why: LgspError
) -> Settlement:
    """A retry that cannot wait on the bus, as a dead letter."""
    detail = f"{why.message} (after {settlement.detail})"
    entry = entry_for(
        packet, AuditEvent.DEAD_LETTERED, recipient=recipient, outcome=str(why.code), detail=detail
    )
    log_event(log, entry, logging.ERROR)
    return Settlement(
        DeliveryState.DEAD_LETTERED,
        [*settlement.entries, entry],
        detail,
        attempted=settlement.attempted,
    )
