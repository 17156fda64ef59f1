"""The pull inbox: for agencies whose systems cannot take pushes, the adapter keeps each packet
until their system fetches it and acknowledges it, as the national axis works (list received,
fetch each, ``updateStatus done`` or ``fail``).

A packet stays listed until it is acknowledged, so a system that crashed between fetching and
acknowledging sees it again. The acknowledgement is the delivery: ``done`` records it delivered,
``fail`` refused, each with its audit entry, and the sender hears of it as of any delivery.
Clients see only the inboxes of their own agencies: another agency's packet is answered as a
missing one (404), so the inbox reveals nothing about what it does not hold for the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from lgsp_adapter.audit import AuditEntry, AuditEvent, log_event
from lgsp_adapter.errors import ErrorCode, PermanentError
from lgsp_adapter.exchange.signature_gate import SignatureGate
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.registry.agencies import Client, DeliveryMode
from lgsp_adapter.registry.directory import Directory
from lgsp_adapter.store import DeliveryRecord, DeliveryState, Store, StoredPacket, entry_for
from lgsp_adapter.store.records import InboxItem

log = logging.getLogger(__name__)

MAX_PAGE = 500
Announce = Callable[[UUID, str], Awaitable[None]]
_ACKNOWLEDGED = (DeliveryState.DELIVERED, DeliveryState.REFUSED)
_SEEN = (DeliveryState.HELD, *_ACKNOWLEDGED)


class Acknowledgement(StrEnum):
    """What an agency's system says of a packet it fetched (the axis' transport status)."""

    DONE = "done"  # taken in: the packet is delivered
    FAIL = "fail"  # cannot be taken in: the packet is refused, and the sender told


_OUTCOME = {
    Acknowledgement.DONE: (DeliveryState.DELIVERED, AuditEvent.DELIVERED, "ok"),
    Acknowledgement.FAIL: (DeliveryState.REFUSED, AuditEvent.REFUSED, "inbox.fail"),
}


def _one_line(text: str) -> str:
    """A reason as one storable line: no control characters, no unpaired surrogates."""
    printable = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(printable.encode("utf-8", "replace").decode("utf-8").split())


def _detail(client: Client, status: Acknowledgement, reason: str | None) -> str:
    said = f": {_one_line(reason)}" if reason else ""
    return f"acknowledged {status.value} by {client.name}{said}"[:500]


def _not_found() -> PermanentError:
    return PermanentError(ErrorCode.PACKET_NOT_FOUND, "no such packet in this client's inboxes")


class Requeue(Protocol):
    """What the bus offers to put a delivery back in its agency's queue."""

    async def requeue(self, packet_id: UUID, recipient: str, entries: list[AuditEntry]) -> None:
        """Queue the delivery again for this daemon's consumer."""
        ...


async def release_stranded(
    store: Store, directory: Directory, bus: Requeue, announce: Announce
) -> int:
    """Packets held for agencies that no longer fetch them (at start, and after every registry
    change): one whose agency now takes pushes goes back on the bus to be pushed; one whose
    agency another daemon serves now ([[known_agencies]]) is dead-lettered, and its sender
    told. One whose agency was removed from the registry stays held, as its queued packets
    do, until it is registered again. Returns how many were moved."""
    moved = 0
    for packet_id, recipient in await store.held():
        code = AgencyCode.parse(recipient)
        agency = directory.served(code)
        if agency is not None and agency.endpoint.mode is DeliveryMode.PULL:
            continue
        if agency is None and not directory.is_known(code):
            continue  # removed from the registry: held until it is registered again
        packet = await store.facts(packet_id)
        if packet is None:
            continue
        if agency is not None:
            entry = entry_for(
                packet,
                AuditEvent.PUBLISHED,
                recipient=recipient,
                outcome="inbox.released",
                detail="the agency's endpoint now takes pushes: out of the inbox, onto the bus",
            )
            await bus.requeue(packet_id, recipient, [entry])
        else:
            why = "held for an agency another daemon serves now"
            entry = entry_for(
                packet,
                AuditEvent.DEAD_LETTERED,
                recipient=recipient,
                outcome="recipient.not_served",
                detail=why,
            )
            await store.update_delivery(
                packet_id, recipient, DeliveryState.DEAD_LETTERED, entries=[entry], detail=why
            )
            await announce(packet_id, recipient)
        log_event(log, entry, logging.WARNING)
        moved += 1
    return moved


class Inbox:
    """Lists, hands out and takes acknowledgements of held packets."""

    def __init__(
        self,
        *,
        store: Store,
        directory: Directory,
        announce: Announce,
        gate: SignatureGate | None = None,
    ) -> None:
        self._gate = gate or SignatureGate(None)
        self._store = store
        self._directory = directory
        self._announce = announce  # the bus tells the sender how the delivery ended

    def pull_agencies(self, client: Client) -> list[str]:
        """The client's agencies whose packets wait in an inbox."""
        codes = []
        for code in client.agencies:
            served = self._directory.served(code)
            if served is not None and served.endpoint.mode is DeliveryMode.PULL:
                codes.append(str(code))
        return codes

    async def listing(
        self, client: Client, *, kind: str | None, after: int, limit: int
    ) -> list[InboxItem]:
        """One page of the packets waiting for the client's agencies."""
        if not 1 <= limit <= MAX_PAGE or after < 0:
            raise PermanentError(
                ErrorCode.INBOX_BAD_REQUEST,
                f"limit must be 1 to {MAX_PAGE} and after a cursor from a previous page",
            )
        agencies = self.pull_agencies(client)
        if not agencies:
            return []
        return await self._store.inbox(agencies, kind=kind, after=after, limit=limit)

    async def recipients_of(self, client: Client, packet_id: UUID) -> list[str]:
        """Which of the client's pull agencies the packet is (or was) held for: several when
        one system speaks for several recipients of one document; ``packet.not_found`` when
        none."""
        mine = set(self.pull_agencies(client))
        found = [
            d.recipient
            for d in await self._store.deliveries(packet_id)
            if d.recipient in mine and d.state in _SEEN
        ]
        if not found:
            raise _not_found()
        return found

    async def fetch(
        self, client: Client, packet_id: UUID, recipient: str | None
    ) -> tuple[StoredPacket, str]:
        """The packet, exactly as submitted, and which of the client's agencies it is for."""
        chosen = await self._delivery(client, packet_id, recipient)
        packet = await self._store.packet(packet_id)
        if packet is None:
            raise _not_found()
        return packet, chosen.recipient

    async def signature_headers(self, packet: StoredPacket) -> dict[str, str]:
        """What a fetching system learns of the packet's signatures, as a pushed one does."""
        return await self._gate.headers(packet)

    async def acknowledge(
        self,
        client: Client,
        packet_id: UUID,
        recipient: str | None,
        status: Acknowledgement,
        reason: str | None,
    ) -> DeliveryRecord:
        """End the delivery as ``status`` says; the same acknowledgement again changes nothing,
        the other one after it is ``inbox.already_acknowledged``."""
        record = await self._delivery(client, packet_id, recipient)
        state, event, outcome = _OUTCOME[status]
        packet = await self._store.facts(packet_id)
        if packet is None:
            raise _not_found()
        detail = _detail(client, status, reason)
        entry = entry_for(packet, event, recipient=record.recipient, outcome=outcome, detail=detail)
        ended = await self._store.acknowledge(
            packet_id, record.recipient, state, entries=[entry], detail=detail
        )
        if ended is None:  # it was not held any more: acknowledged before
            current = await self._delivery(client, packet_id, record.recipient)
            if current.state is not state:
                raise PermanentError(
                    ErrorCode.INBOX_ALREADY_ACKNOWLEDGED,
                    f"packet {packet_id} was already acknowledged ({current.state.value})",
                )
            ended = current  # the same again: a client retrying after a lost answer
        else:
            log_event(log, entry)
        await self._tell(packet_id, record.recipient)
        return ended

    async def _tell(self, packet_id: UUID, recipient: str) -> None:
        """Tell the sender how the delivery ended. Told again on a repeated acknowledgement,
        since the first telling may have failed; receipts are idempotent. A failure here
        leaves the acknowledgement standing."""
        try:
            await self._announce(packet_id, recipient)
        except Exception:
            log.warning(
                "%s %s: the sender could not be told yet; acknowledge again to retry",
                packet_id,
                recipient,
                exc_info=True,
            )

    async def acknowledge_all(
        self,
        client: Client,
        packet_id: UUID,
        recipients: list[str],
        status: Acknowledgement,
        reason: str | None,
    ) -> None:
        """Acknowledge the packet alike for each of ``recipients`` (a document held for several
        of the client's agencies, acknowledged once), in one transaction, or for none: when one
        was acknowledged the other way already, the call is refused and nothing changes."""
        state, event, outcome = _OUTCOME[status]
        packet = await self._store.facts(packet_id)
        if packet is None:
            raise _not_found()
        detail = _detail(client, status, reason)
        entries = {
            r: [entry_for(packet, event, recipient=r, outcome=outcome, detail=detail)]
            for r in recipients
        }
        otherwise, ended = await self._store.acknowledge_all(packet_id, entries, state, detail)
        if otherwise:
            raise PermanentError(
                ErrorCode.INBOX_ALREADY_ACKNOWLEDGED,
                f"packet {packet_id} was already acknowledged otherwise for "
                f"{', '.join(otherwise)}: nothing changed",
                details={"recipients": otherwise},
            )
        for recipient in ended:
            log_event(log, entries[recipient][0])
        for recipient in recipients:  # told again on a repeat, as ``acknowledge`` does
            await self._tell(packet_id, recipient)

    async def _delivery(
        self, client: Client, packet_id: UUID, recipient: str | None
    ) -> DeliveryRecord:
        mine = set(self.pull_agencies(client))
        records = [
            d
            for d in await self._store.deliveries(packet_id)
            if d.recipient in mine and d.state in _SEEN
        ]
        if recipient is not None:
            records = [d for d in records if d.recipient == recipient]
        if not records:
            raise _not_found()
        if len(records) > 1:
            raise PermanentError(
                ErrorCode.INBOX_BAD_REQUEST,
                "the packet is held for several of this client's agencies: name the recipient",
                details={"recipients": [d.recipient for d in records]},
            )
        return records[0]
