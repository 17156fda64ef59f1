"""What every part of the embedded store shares: its two connections and its write transaction.

``SqliteStore`` is this core and its parts (``sqlite_queue``, ``sqlite_held``): one object on
one pair of connections, so that a change and the audit entries recording it commit together.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import IO, Any
from uuid import UUID

from lgsp_adapter.audit import AuditEntry
from lgsp_adapter.store.base import CommitObserver
from lgsp_adapter.store.closing import ClosedOnExit
from lgsp_adapter.store.group_commit import GroupCommit
from lgsp_adapter.store.records import DeliveryRecord, DeliveryState, StateChange, StoredPacket
from lgsp_adapter.store.rows import DELIVERY_SQL, FACT_COLUMNS, delivery_of, tell_observers
from lgsp_adapter.store.sqlite_agency_list import SqliteAgencyList
from lgsp_adapter.store.sqlite_audit import SqliteAuditLog
from lgsp_adapter.store.sqlite_registry import SqliteRegistry


class SqliteCore(ClosedOnExit):
    """The connections, the audit log and registry that share them, and the one way to write."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        reader: sqlite3.Connection,
        owner: IO[bytes] | None = None,
    ) -> None:
        self._db = connection  # writes, in the transactions of self._writer only
        # Reads on their own connection see only committed data (WAL), and need no lock.
        self._read = reader
        self._writer = GroupCommit(connection)
        self._owner = owner  # the open lock file while this process owns the store
        # Entries appended in the open transaction, told to observers once it commits.
        self._appended: list[AuditEntry] = []
        self._observers: list[CommitObserver] = []
        self.audit = SqliteAuditLog(
            writer=connection,
            reader=reader,
            transaction=self._write,
            appended=lambda entries: self._appended.extend(entries),
        )
        self.agency_list = SqliteAgencyList(
            writer=connection, reader=reader, transaction=self._write, audit=self.audit
        )
        self.registry = SqliteRegistry(
            writer=connection, reader=reader, transaction=self._write, audit=self.audit
        )

    async def close(self) -> None:
        """Close the connections once the COMMITs under way are on disk."""
        await self._writer.close()
        self._read.close()
        self._db.close()
        if self._owner is not None:
            self._owner.close()  # releases the lock

    def observe(self, observer: CommitObserver) -> None:
        """Call ``observer`` after each commit that appended to the audit log, with the
        entries and the seconds the write took (the metrics count packet events so, and so
        cannot disagree with the log)."""
        self._observers.append(observer)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[None]:
        """One write transaction: all of it on disk, or none of it, even when the writer is
        cancelled (a consumer whose broker connection dropped); see ``GroupCommit``."""
        began = time.perf_counter()
        appended: list[AuditEntry] = []

        def committed() -> None:  # told even if the writer was cancelled meanwhile
            if appended:
                tell_observers(self._observers, appended, time.perf_counter() - began)

        async with self._writer.transaction(on_commit=committed):
            self._appended = appended
            yield

    def _append(self, entries: list[AuditEntry]) -> None:
        """Append audit entries inside the current write transaction."""
        self.audit.append_in_transaction(entries)

    def _set_state(
        self,
        packet_id: UUID,
        recipient: str,
        state: DeliveryState,
        change: StateChange | None = None,
    ) -> DeliveryRecord:
        change = change or {"entries": []}
        found = fetch(
            self._db,
            f"SELECT {DELIVERY_SQL} FROM deliveries WHERE packet_id = ? AND recipient = ?",
            (str(packet_id), recipient),
        )
        if not found:
            raise KeyError(f"no delivery of {packet_id} to {recipient}")
        current = found[0]
        if not DeliveryState(current[2]).may_become(state):
            return delivery_of(current)
        updated = fetch(
            self._db,
            "UPDATE deliveries SET state = ?, detail = ?, updated_at = ?,"
            " attempts = MAX(attempts + ?, ? - earlier_attempts)"
            " WHERE packet_id = ? AND recipient = ?"
            f" RETURNING {DELIVERY_SQL}",
            (
                state.value,
                change.get("detail"),
                now(),
                int(change.get("attempted", False)),
                change.get("attempts", 0),
                str(packet_id),
                recipient,
            ),
        )
        if not updated:
            raise KeyError(f"no delivery of {packet_id} to {recipient}")
        return delivery_of(updated[0])


def fetch(db: sqlite3.Connection, sql: str, parameters: Sequence[Any]) -> list[Any]:
    return db.execute(sql, parameters).fetchall()


PACKET_COLUMNS = (
    "(id, kind, sender, recipients, document_id, content_type, payload, sha256, client,"
    " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


FACTS = ", ".join(FACT_COLUMNS)
BY_ID = "FROM packets WHERE id = ?"


def packet_row(packet: StoredPacket) -> tuple[Any, ...]:
    return (
        str(packet.id),
        packet.kind,
        packet.sender,
        json.dumps(packet.recipients),
        packet.document_id,
        packet.content_type,
        packet.payload,
        packet.sha256,
        packet.client,
        packet.received_at.isoformat(),
    )


def now() -> str:
    return datetime.now(UTC).isoformat()


DEAD_LETTER_COLUMNS = (
    "d.rowid, p.id, d.recipient, p.sender, p.kind, p.document_id,"
    " d.attempts + d.earlier_attempts, d.detail, p.received_at, d.updated_at"
)
