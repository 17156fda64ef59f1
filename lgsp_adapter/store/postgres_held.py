"""Held and dead-lettered deliveries on PostgreSQL: as ``sqlite_held``, and a replay wakes
whichever replica relays the outbox (``NOTIFY``).
"""

from __future__ import annotations

from typing import Unpack
from uuid import UUID

from lgsp_adapter.audit import AuditEntry
from lgsp_adapter.store.postgres_core import DEAD_LETTER, DELIVERY, PostgresCore, optional_storable
from lgsp_adapter.store.postgres_session import OUTBOX_CHANNEL
from lgsp_adapter.store.records import (
    DeadLetter,
    DeadLetterQuery,
    DeliveryRecord,
    DeliveryState,
    InboxItem,
    SentItem,
    StateChange,
    split_acknowledged,
)
from lgsp_adapter.store.rows import dead_letter_of, delivery_of, inbox_item_of, sent_item_of


class PostgresHeld(PostgresCore):
    """The held and dead-lettered deliveries' part of ``PostgresStore``."""

    async def inbox(
        self, recipients: list[str], *, kind: str | None, after: int, limit: int
    ) -> list[InboxItem]:
        """Packets held for ``recipients``' pull inboxes, oldest first, after ``after``."""
        rows = await self._pool.fetch(
            "SELECT d.seq, p.id, d.recipient, p.sender, p.kind, p.document_id, p.content_type,"
            " length(p.payload), p.received_at FROM deliveries d JOIN packets p"
            " ON p.id = d.packet_id WHERE d.state = $1 AND d.recipient = ANY($2)"
            " AND ($3::text IS NULL OR p.kind = $3) AND d.seq > $4 ORDER BY d.seq LIMIT $5",
            DeliveryState.HELD.value,
            recipients,
            kind,
            after,
            limit,
        )
        return [inbox_item_of(row) for row in rows]

    async def sent(self, senders: list[str], *, kind: str | None, limit: int) -> list[SentItem]:
        """As ``SqliteHeld.sent``."""
        rows = await self._pool.fetch(
            "SELECT p.id, d.recipient, p.sender, p.kind, p.document_id, p.received_at, d.state,"
            " d.updated_at, d.detail FROM (SELECT id, sender, kind, document_id, received_at"
            " FROM packets WHERE sender = ANY($1)"
            " AND ($2::text IS NULL OR kind = $2) ORDER BY received_at DESC, id LIMIT $3) p"
            " JOIN deliveries d ON d.packet_id = p.id"
            " ORDER BY p.received_at DESC, p.id, d.recipient",
            senders,
            kind,
            limit,
        )
        return [sent_item_of(row) for row in rows]

    async def dead_letters(self, **query: Unpack[DeadLetterQuery]) -> list[DeadLetter]:
        """Dead-lettered deliveries, oldest first, after the cursor ``after``."""
        rows = await self._pool.fetch(
            f"SELECT {DEAD_LETTER} FROM deliveries d JOIN packets p ON p.id = d.packet_id"
            " WHERE d.state = $1 AND ($2::text IS NULL OR d.recipient = $2)"
            " AND ($3::text IS NULL OR p.sender = $3) AND ($4::text IS NULL OR p.kind = $4)"
            " AND d.seq > $5 ORDER BY d.seq LIMIT $6",
            DeliveryState.DEAD_LETTERED.value,
            query["recipient"],
            query["sender"],
            query["kind"],
            query["after"],
            query["limit"],
        )
        return [dead_letter_of(row) for row in rows]

    async def dead_letter(self, packet_id: UUID, recipient: str) -> DeadLetter | None:
        """One delivery, if it is dead-lettered."""
        row = await self._pool.fetchrow(
            f"SELECT {DEAD_LETTER} FROM deliveries d JOIN packets p ON p.id = d.packet_id"
            " WHERE d.state = $1 AND d.packet_id = $2 AND d.recipient = $3",
            DeliveryState.DEAD_LETTERED.value,
            packet_id,
            recipient,
        )
        return None if row is None else dead_letter_of(row)

    async def leave_dead_letters(
        self, packet_id: UUID, recipient: str, state: DeliveryState, entries: list[AuditEntry]
    ) -> DeliveryRecord | None:
        """An operator's decision on a dead letter: back to the outbox (a fresh budget: the
        attempts so far kept apart) or ``dropped``; None if it is not dead-lettered (any
        more)."""
        replay = state is DeliveryState.ACCEPTED
        async with self._write() as tx:
            row = await tx.conn.fetchrow(
                "UPDATE deliveries SET state = $1, updated_at = clock_timestamp(),"
                " earlier_attempts = earlier_attempts + CASE WHEN $2 THEN attempts ELSE 0 END,"
                " replays = replays + CASE WHEN $2 THEN 1 ELSE 0 END,"
                " attempts = CASE WHEN $2 THEN 0 ELSE attempts END,"
                " detail = CASE WHEN $2 THEN NULL ELSE detail END"
                f" WHERE packet_id = $3 AND recipient = $4 AND state = $5 RETURNING {DELIVERY}",
                state.value,
                replay,
                packet_id,
                recipient,
                DeliveryState.DEAD_LETTERED.value,
            )
            if row is None:
                return None
            if replay:
                await tx.conn.execute(f"NOTIFY {OUTBOX_CHANNEL}")
            await tx.append(entries)
        return delivery_of(row)

    async def held(self) -> list[tuple[UUID, str]]:
        """Every delivery waiting in a pull inbox, oldest first."""
        rows = await self._pool.fetch(
            "SELECT packet_id, recipient FROM deliveries WHERE state = $1 ORDER BY seq",
            DeliveryState.HELD.value,
        )
        return [(row[0], row[1]) for row in rows]

    async def acknowledge(
        self, packet_id: UUID, recipient: str, state: DeliveryState, **change: Unpack[StateChange]
    ) -> DeliveryRecord | None:
        """End a held delivery as ``state``; None if it was not held (nothing is written)."""
        entries = change["entries"]
        detail = change.get("detail")
        async with self._write() as tx:
            row = await tx.conn.fetchrow(
                "UPDATE deliveries SET state = $1, detail = $2, updated_at = clock_timestamp(),"
                " attempts = attempts + 1 WHERE packet_id = $3 AND recipient = $4"
                f" AND state = $5 RETURNING {DELIVERY}",
                state.value,
                optional_storable(detail),
                packet_id,
                recipient,
                DeliveryState.HELD.value,
            )
            if row is None:
                return None
            await tx.append(entries)
        return delivery_of(row)

    async def acknowledge_all(
        self,
        packet_id: UUID,
        entries: dict[str, list[AuditEntry]],
        state: DeliveryState,
        detail: str | None,
    ) -> tuple[list[str], list[str]]:
        """End these held deliveries as ``state`` together, or none (see ``Store``)."""
        async with self._write() as tx:
            rows = await tx.conn.fetch(
                "SELECT recipient, state FROM deliveries WHERE packet_id = $1"
                " AND recipient = ANY($2) ORDER BY recipient FOR UPDATE",
                packet_id,
                list(entries),
            )
            now_in = {row["recipient"]: DeliveryState(row["state"]) for row in rows}
            otherwise, ended = split_acknowledged(entries, now_in, state)
            if otherwise:
                return otherwise, []
            for recipient in ended:
                await tx.conn.execute(
                    "UPDATE deliveries SET state = $1, detail = $2, updated_at = clock_timestamp(),"
                    " attempts = attempts + 1 WHERE packet_id = $3 AND recipient = $4",
                    state.value,
                    optional_storable(detail),
                    packet_id,
                    recipient,
                )
                await tx.append(entries[recipient])
        return [], ended
