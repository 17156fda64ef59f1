"""Deliveries that wait on someone: in a pull inbox for the agency's system to fetch, or
dead-lettered for an operator to replay or drop.

Each decision is one conditional UPDATE (``... AND state = held``), so of two acknowledgements
or two operators racing one wins and the other gets None, and nothing is written twice.
"""

from __future__ import annotations

import json
from typing import Unpack
from uuid import UUID

from lgsp_adapter.audit import AuditEntry
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
from lgsp_adapter.store.rows import (
    DELIVERY_SQL,
    dead_letter_of,
    delivery_of,
    inbox_item_of,
    sent_item_of,
)
from lgsp_adapter.store.sqlite_core import DEAD_LETTER_COLUMNS, SqliteCore, now


class SqliteHeld(SqliteCore):
    """The held and dead-lettered deliveries' part of ``SqliteStore``."""

    async def inbox(
        self, recipients: list[str], *, kind: str | None, after: int, limit: int
    ) -> list[InboxItem]:
        """Packets held for ``recipients``' pull inboxes, oldest first, after ``after``."""
        rows = self._read.execute(
            "SELECT d.rowid, p.id, d.recipient, p.sender, p.kind, p.document_id,"
            " p.content_type, length(p.payload), p.received_at"
            " FROM deliveries d JOIN packets p ON p.id = d.packet_id"
            " WHERE d.state = ? AND d.recipient IN (SELECT value FROM json_each(?))"
            " AND (? IS NULL OR p.kind = ?) AND d.rowid > ? ORDER BY d.rowid LIMIT ?",
            (DeliveryState.HELD.value, json.dumps(recipients), kind, kind, after, limit),
        ).fetchall()
        return [inbox_item_of(row) for row in rows]

    async def sent(self, senders: list[str], *, kind: str | None, limit: int) -> list[SentItem]:
        """The deliveries of the ``limit`` latest packets ``senders`` sent, newest first."""
        rows = self._read.execute(
            "SELECT p.id, d.recipient, p.sender, p.kind, p.document_id, p.received_at, d.state,"
            " d.updated_at, d.detail FROM (SELECT id, sender, kind, document_id, received_at"
            " FROM packets WHERE sender IN"
            " (SELECT value FROM json_each(?)) AND (? IS NULL OR kind = ?)"
            " ORDER BY received_at DESC, rowid DESC LIMIT ?) p"
            " JOIN deliveries d ON d.packet_id = p.id"
            " ORDER BY p.received_at DESC, p.id, d.recipient",
            (json.dumps(senders), kind, kind, limit),
        ).fetchall()
        return [sent_item_of(row) for row in rows]

    async def dead_letters(self, **query: Unpack[DeadLetterQuery]) -> list[DeadLetter]:
        """Dead-lettered deliveries, oldest first, after the cursor ``after``."""
        rows = self._read.execute(
            f"SELECT {DEAD_LETTER_COLUMNS} FROM deliveries d JOIN packets p ON p.id = d.packet_id"
            " WHERE d.state = :state AND (:recipient IS NULL OR d.recipient = :recipient)"
            " AND (:sender IS NULL OR p.sender = :sender) AND (:kind IS NULL OR p.kind = :kind)"
            " AND d.rowid > :after ORDER BY d.rowid LIMIT :limit",
            {**query, "state": DeliveryState.DEAD_LETTERED.value},
        ).fetchall()
        return [dead_letter_of(row) for row in rows]

    async def dead_letter(self, packet_id: UUID, recipient: str) -> DeadLetter | None:
        """One delivery, if it is dead-lettered."""
        row = self._read.execute(
            f"SELECT {DEAD_LETTER_COLUMNS} FROM deliveries d JOIN packets p ON p.id = d.packet_id"
            " WHERE d.state = ? AND d.packet_id = ? AND d.recipient = ?",
            (DeliveryState.DEAD_LETTERED.value, str(packet_id), recipient),
        ).fetchone()
        return None if row is None else dead_letter_of(row)

    async def leave_dead_letters(
        self, packet_id: UUID, recipient: str, state: DeliveryState, entries: list[AuditEntry]
    ) -> DeliveryRecord | None:
        """An operator's decision on a dead letter: back to the outbox (``accepted``, on a
        fresh budget: the attempts so far kept apart) or ``dropped``; None if it is not
        dead-lettered (any more: two operators cannot both act on it)."""
        async with self._write():
            row = self._db.execute(
                "UPDATE deliveries SET state = ?, updated_at = ?,"
                " earlier_attempts = earlier_attempts + CASE WHEN ? THEN attempts ELSE 0 END,"
                " replays = replays + CASE WHEN ? THEN 1 ELSE 0 END,"
                " attempts = CASE WHEN ? THEN 0 ELSE attempts END,"
                " detail = CASE WHEN ? THEN NULL ELSE detail END"
                " WHERE packet_id = ? AND recipient = ? AND state = ?"
                f" RETURNING {DELIVERY_SQL}",
                (
                    state.value,
                    now(),
                    *[state is DeliveryState.ACCEPTED] * 4,
                    str(packet_id),
                    recipient,
                    DeliveryState.DEAD_LETTERED.value,
                ),
            ).fetchone()
            if row is None:
                return None
            self._append(entries)
        return delivery_of(row)

    async def held(self) -> list[tuple[UUID, str]]:
        """Every delivery waiting in a pull inbox, oldest first."""
        rows = self._read.execute(
            "SELECT packet_id, recipient FROM deliveries WHERE state = ? ORDER BY rowid",
            (DeliveryState.HELD.value,),
        ).fetchall()
        return [(UUID(row[0]), row[1]) for row in rows]

    async def acknowledge(
        self, packet_id: UUID, recipient: str, state: DeliveryState, **change: Unpack[StateChange]
    ) -> DeliveryRecord | None:
        """End a held delivery as ``state``, with its entries; None if it was not held (an
        acknowledgement raced another, or came twice): then nothing is written."""
        entries = change["entries"]
        detail = change.get("detail")
        async with self._write():
            row = self._db.execute(
                "UPDATE deliveries SET state = ?, detail = ?, updated_at = ?,"
                " attempts = attempts + 1 WHERE packet_id = ? AND recipient = ? AND state = ?"
                f" RETURNING {DELIVERY_SQL}",
                (state.value, detail, now(), str(packet_id), recipient, DeliveryState.HELD.value),
            ).fetchone()
            if row is None:
                return None
            self._append(entries)
        return delivery_of(row)

    async def acknowledge_all(
        self,
        packet_id: UUID,
        entries: dict[str, list[AuditEntry]],
        state: DeliveryState,
        detail: str | None,
    ) -> tuple[list[str], list[str]]:
        """End these held deliveries as ``state`` together, or none (see ``Store``)."""
        async with self._write():
            rows = self._db.execute(
                "SELECT recipient, state FROM deliveries WHERE packet_id = ?"
                " AND recipient IN (SELECT value FROM json_each(?))",
                (str(packet_id), json.dumps(list(entries))),
            ).fetchall()
            now_in = {recipient: DeliveryState(value) for recipient, value in rows}
            otherwise, ended = split_acknowledged(entries, now_in, state)
            if otherwise:
                return otherwise, []
            for recipient in ended:
                self._db.execute(
                    "UPDATE deliveries SET state = ?, detail = ?, updated_at = ?,"
                    " attempts = attempts + 1 WHERE packet_id = ? AND recipient = ?",
                    (state.value, detail, now(), str(packet_id), recipient),
                )
                self._append(entries[recipient])
        return [], ended
